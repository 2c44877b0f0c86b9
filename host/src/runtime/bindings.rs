//! Host-side bindings generated from `wit/`: the HAM interfaces the host implements
//! (`storage`, `config`, `log`, `habits`, `jobs`, `llm`) and the exports it calls
//! (`job-handler`, `rules`).
//!
//! `llm` is linked for every component, but a component that imports it is only
//! loaded when its manifest says `llm = true` (`LoadError::LlmNotGranted`).

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
            import ham:plugin/llm@0.1.0;
            export ham:plugin/job-handler@0.1.0;
            export ham:plugin/rules@0.1.0;
        }
    ",
    world: "ham:host/host",
    imports: { default: async },
    exports: { default: async },
    with: {
        "ham:plugin/llm.completion-stream": crate::llm::CompletionStream,
    },
});
