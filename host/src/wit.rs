//! Host-side bindings generated from `wit/`: every HAM interface plugins may
//! import (the `imports` world of `wit/ham.wit`, so an interface added there is
//! here too; [`crate::capabilities`] implements each) and the exports the host
//! calls (`job-handler`, `scheduled-rules`, and `rules`, the first contract of a
//! rule set, which the host still calls for a component built against it).
//!
//! `llm` and `notifications` are linked for every component, but a component
//! that imports one is only loaded when its manifest says `llm = true`
//! (`LoadError::LlmNotGranted`) or `notifications = true`
//! (`LoadError::NotificationsNotGranted`).

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package ham:host;
        world host {
            include ham:plugin/imports@0.1.0;
            export ham:plugin/job-handler@0.1.0;
            export ham:plugin/rules@0.1.0;
            export ham:plugin/scheduled-rules@0.1.0;
        }
    ",
    world: "ham:host/host",
    imports: { default: async },
    exports: { default: async },
    with: {
        "ham:plugin/llm.completion-stream": crate::llm::CompletionStream,
    },
});
