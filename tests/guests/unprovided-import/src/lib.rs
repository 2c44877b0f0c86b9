//! An HTTP component that imports an interface the host does not provide: uploads
//! must be refused, naming the import.

use wasip2::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({
    inline: "
        package test:guests;
        interface missing {
            ping: func() -> string;
        }
        world needs-missing {
            import missing;
        }
    ",
});

struct Handler;

wasip2::http::proxy::export!(Handler);

impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let _ = test::guests::missing::ping();
        ResponseOutparam::set(out, Ok(OutgoingResponse::new(Fields::new())));
    }
}
