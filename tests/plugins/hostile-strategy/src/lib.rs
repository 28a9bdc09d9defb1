//! A hostile strategy plugin, written straight against `wit/plugin.wit`
//! with wit-bindgen (no SDK), as an outside author could. What it does is
//! chosen by the analysis spec's `config` (the Canary's `strategyConfig`):
//! each behaviour attacks the host in one way. Any other config behaves
//! like a well-mannered weighted strategy, so a test can tell a refusal
//! from a plugin that cannot run at all.

use std::io::Read as _;

wit_bindgen::generate!({
    world: "strategy",
    path: "../../../wit",
});

use exports::sluice::plugin::rollout::Guest;
use sluice::plugin::log::{Level, log};
use sluice::plugin::strategy_types::{Action, Advance, AnalysisSpec, Observation, RolloutState};
use sluice::plugin::types::{
    Backend, HeaderMatch, HttpMatch, RoutePlan, RouteRule, StringMatch, WeightedBackend,
};

struct Hostile;

fn weighted(canary: u32) -> RoutePlan {
    RoutePlan {
        rules: vec![RouteRule {
            matches: Vec::new(),
            backends: vec![
                WeightedBackend {
                    backend: Backend::Primary,
                    weight: 100 - canary.min(100),
                    set_cookie: None,
                },
                WeightedBackend {
                    backend: Backend::Canary,
                    weight: canary.min(100),
                    set_cookie: None,
                },
            ],
            mirror: None,
            set_cookie: None,
        }],
    }
}

/// A plan whose first rule matches a header with `regex`.
fn with_regex(regex: String, canary: u32) -> RoutePlan {
    let mut plan = weighted(canary);
    let mut matched = weighted(0).rules.remove(0);
    matched.matches = vec![HttpMatch {
        path_prefix: None,
        headers: vec![HeaderMatch {
            name: "x-user".into(),
            value: StringMatch::Regex(regex),
        }],
        query_params: Vec::new(),
        method: None,
    }];
    plan.rules.insert(0, matched);
    plan
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(frame[1] + 1) + frame[0]
}

/// Attacks shared by both exports; `None` when `behaviour` is not one.
fn attack(behaviour: &str) -> Option<String> {
    match behaviour {
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(10)),
        "clock-loop" => {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(10) {}
        }
        "stdin" => {
            let mut input = Vec::new();
            let read = std::io::stdin().read_to_end(&mut input);
            return Some(format!("stdin gave {read:?} and {} bytes", input.len()));
        }
        "files" => {
            return Some(format!("read /etc/passwd: {:?}", std::fs::read("/etc/passwd").map(|b| b.len())));
        }
        "socket" => {
            return Some(format!(
                "connect: {:?}",
                std::net::TcpStream::connect("127.0.0.1:9").map(|_| ())
            ));
        }
        "env" => return Some(format!("{} environment variables", std::env::vars().count())),
        "wall-clock" => {
            return Some(format!("{:?}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)));
        }
        "loop" => spin(),
        "stack-overflow" => {
            recurse(0);
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "panic" => panic!("hostile plugin panics on purpose"),
        "exit" => std::process::exit(3),
        "stderr-flood" => loop {
            eprintln!("flooding stderr with a line of output that goes on and on");
        },
        "log-flood" => {
            for i in 0..10_000 {
                log(Level::Info, &format!("log line {i}"));
            }
        }
        "big-error" => return Some("x".repeat(10 * 1024 * 1024)),
        _ => return None,
    }
    None
}

impl Guest for Hostile {
    fn decide(spec: AnalysisSpec, state: RolloutState, _: Observation) -> Result<Action, String> {
        if let Some(error) = attack(&spec.config) {
            return Err(error);
        }
        match spec.config.as_str() {
            "big-reason" => Ok(Action::Hold("x".repeat(10 * 1024 * 1024))),
            "advance-100" => Ok(Action::Advance(Advance {
                canary_weight: 100,
                iterations: state.iterations,
            })),
            "random" => {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u32(7);
                Ok(Action::Hold(format!("random {}", h.finish())))
            }
            _ if state.canary_weight >= spec.max_weight => Ok(Action::Promote),
            _ => Ok(Action::Advance(Advance {
                canary_weight: (state.canary_weight + spec.step_weight.unwrap_or(10))
                    .min(spec.max_weight),
                iterations: state.iterations,
            })),
        }
    }

    fn route(spec: AnalysisSpec, state: RolloutState) -> Result<RoutePlan, String> {
        if let Some(error) = attack(&spec.config) {
            return Err(error);
        }
        Ok(match spec.config.as_str() {
            "all-to-canary" => weighted(100),
            "huge-regex" => with_regex("a".repeat(100_000), state.canary_weight),
            "pathological-regex" => with_regex(r"(\w{100}){100}".into(), state.canary_weight),
            "backends-1000" => {
                let mut plan = weighted(state.canary_weight);
                plan.rules[0].backends = (0..1000)
                    .map(|_| WeightedBackend {
                        backend: Backend::Canary,
                        weight: 100,
                        set_cookie: None,
                    })
                    .collect();
                plan
            }
            _ => weighted(state.canary_weight),
        })
    }
}

export!(Hostile);
