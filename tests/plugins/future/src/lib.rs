//! Test plugin built against `sluice:plugin@0.3.0`: the host supports 0.1.x and 0.2.x
//! and must say so.

wit_bindgen::generate!({
    world: "strategy",
    path: "wit",
});

struct Future;

impl exports::sluice::plugin::rollout::Guest for Future {
    fn decide() -> Result<String, String> {
        Ok("from the future".into())
    }
}

export!(Future);
