//! A job handler that does nothing: the benchmark's trivial export.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "ham:plugin/job-plugin",
    generate_all,
});

struct Trivial;

impl exports::ham::plugin::job_handler::Guest for Trivial {
    fn handle(
        _job: exports::ham::plugin::job_handler::Job,
    ) -> Result<(), exports::ham::plugin::job_handler::JobError> {
        Ok(())
    }
}

export!(Trivial);
