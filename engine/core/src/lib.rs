//! The Gateway API vocabulary that both sides of Sluice check against: the
//! Canary spec checks (`sluice-api`) and the checks on a plugin's route
//! answers (`sluice-host`), and the router that writes HTTPRoutes
//! (`sluice-rollout`). It knows nothing of Kubernetes or Wasm.

pub mod gateway;
