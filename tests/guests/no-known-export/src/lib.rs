//! A valid component that exports nothing HAM knows: uploads must be refused.

wit_bindgen::generate!({
    inline: "
        package test:guests;
        world greeter {
            export greet: func() -> string;
        }
    ",
});

struct Greeter;

impl Guest for Greeter {
    fn greet() -> String {
        "hi".to_string()
    }
}

export!(Greeter);
