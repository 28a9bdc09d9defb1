//! A hostile strategy of contract 0.2, written straight against
//! `wit/v0.2/plugin.wit` with wit-bindgen (no SDK), as an outside author
//! could. Its `config` (the Canary's `strategyConfig`) picks the attack,
//! each aimed at 0.2's new surface; any other config behaves like a
//! well-mannered weighted strategy.
//!
//! - `set-cookie`: a response header filter that sets the canary's sticky
//!   cookie on every response (would pin every user to the canary);
//! - `redirect-all`: the catch-all rule redirects every request;
//! - `redirect-to-canary`: a redirecting rule that also weighs the canary;
//! - `many-filters`: 1,000 filters on the catch-all rule;
//! - `crlf`: a header value that smuggles a second header;
//! - `validate-loops`: `validate-config` never returns.

wit_bindgen::generate!({
    world: "validated-strategy",
    path: "../../../wit/v0.2",
});

use exports::sluice::plugin::rollout::Guest;
use exports::sluice::plugin::settings::Guest as Settings;
use sluice::plugin::strategy_types::{Action, Advance, Observation, Phase, RolloutSpec, RolloutState};
use sluice::plugin::types::{
    Backend, HeaderModifier, HttpHeader, HttpMatch, RequestRedirect, RouteFilter, RoutePlan,
    RouteRule, WeightedBackend,
};

struct Hostile;

fn rule(canary: u32) -> RouteRule {
    RouteRule {
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
        filters: Vec::new(),
    }
}

fn set_header(name: &str, value: &str) -> RouteFilter {
    RouteFilter::ResponseHeaderModifier(HeaderModifier {
        set: vec![HttpHeader {
            name: name.into(),
            value: value.into(),
        }],
        add: Vec::new(),
        remove: Vec::new(),
    })
}

fn redirect() -> RouteFilter {
    RouteFilter::RequestRedirect(RequestRedirect {
        scheme: None,
        hostname: Some("canary.example.com".into()),
        path: None,
        port: None,
        status_code: Some(302),
    })
}

fn active(state: &RolloutState) -> u32 {
    if state.canary_weight > 0 || state.iterations > 0 {
        state.canary_weight
    } else {
        0
    }
}

impl Guest for Hostile {
    fn decide(spec: RolloutSpec, state: RolloutState, _: Observation) -> Result<Action, String> {
        match state.phase {
            Phase::Progressing if state.canary_weight < spec.max_weight => {
                Ok(Action::Advance(Advance {
                    canary_weight: (state.canary_weight + 10).min(spec.max_weight),
                    iterations: state.iterations,
                }))
            }
            Phase::Progressing => Ok(Action::Promote),
            Phase::Promoting if state.canary_weight > 0 => Ok(Action::Advance(Advance {
                canary_weight: 0,
                iterations: state.iterations,
            })),
            Phase::Promoting => Ok(Action::Finalise),
            _ => Err("not called here".into()),
        }
    }

    fn route(spec: RolloutSpec, state: RolloutState) -> Result<RoutePlan, String> {
        let mut catch_all = rule(active(&state));
        let mut rules = Vec::new();
        match spec.config.trim_matches('"') {
            "set-cookie" => catch_all
                .filters
                .push(set_header("Set-Cookie", "sticky=canary; Max-Age=86400")),
            "redirect-all" => catch_all.filters.push(redirect()),
            "redirect-to-canary" => {
                let mut r = rule(100);
                r.matches = vec![HttpMatch {
                    path_prefix: Some("/".into()),
                    headers: Vec::new(),
                    query_params: Vec::new(),
                    method: Some("GET".into()),
                }];
                r.filters.push(redirect());
                rules.push(r);
            }
            "many-filters" => {
                for i in 0..1000 {
                    catch_all
                        .filters
                        .push(set_header(&format!("x-flood-{i}"), "1"));
                }
            }
            "crlf" => catch_all
                .filters
                .push(set_header("x-ok", "1\r\nSet-Cookie: sticky=canary")),
            _ => {}
        }
        rules.push(catch_all);
        Ok(RoutePlan { rules })
    }
}

impl Settings for Hostile {
    #[allow(clippy::empty_loop)]
    fn validate_config(config: String) -> Result<(), String> {
        if config.contains("validate-loops") {
            let mut n: u64 = 0;
            loop {
                n = n.wrapping_add(1);
                std::hint::black_box(n);
            }
        }
        Ok(())
    }
}

export!(Hostile);
