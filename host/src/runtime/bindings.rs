//! Host-side bindings generated from `wit/`: the HAM interfaces the host implements
//! (`storage`, `config`, `log`, `habits`, `jobs`) and the exports it calls
//! (`job-handler`).
//!
//! Interfaces whose host side is not built yet (`llm`) are not
//! linked: a component importing them is refused at upload with the linker's message
//! naming the missing import.

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package ham:host;
        world host {
            import ham:plugin/storage@0.1.0;
            import ham:plugin/config@0.1.0;
            import ham:plugin/log@0.1.0;
            import ham:plugin/habits@0.1.0;
            import ham:plugin/jobs@0.1.0;
            export ham:plugin/job-handler@0.1.0;
        }
    ",
    world: "ham:host/host",
    imports: { default: async },
    exports: { default: async },
});
