//! The app's pages, one per route.

mod compare;
mod home;
mod login;
mod run;
mod runs;
mod step_curves;

pub use compare::ComparePage;
pub use home::HomePage;
pub use login::{LoginPage, UserMenu};
pub use run::RunPage;

use balancelab_shared::{MethodConfig, RunStatus};
use leptos::prelude::*;
use leptos_router::params::ParamsMap;
use leptos_router::NavigateOptions;

/// `path` with the query `params` changed by `changes` (an empty value removes the key): how
/// a view whose state lives in the URL moves to its next state.
pub fn url_with(path: &str, params: ParamsMap, changes: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = (params.into_iter())
        .filter(|(k, _)| !changes.iter().any(|(c, _)| *c == &**k))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let set = changes.iter().filter(|(_, v)| !v.is_empty());
    pairs.extend(set.map(|(k, v)| ((*k).to_owned(), v.clone())));
    let query: Vec<String> = (pairs.iter())
        .map(|(k, v)| format!("{k}={}", String::from(js_sys::encode_uri_component(v))))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Navigation that replaces the current entry and keeps the scroll position: a view's
/// settings change, Back still leaves the page.
pub fn in_place() -> NavigateOptions {
    NavigateOptions {
        replace: true,
        scroll: false,
        ..NavigateOptions::default()
    }
}

/// "MLB (alpha 0.8)", "OGM-GE (alpha 0.8)", "joint", ...
pub fn method_label(method: &MethodConfig) -> String {
    match method {
        MethodConfig::Joint => "joint".into(),
        MethodConfig::MultiLoss(_) => "multi-loss".into(),
        MethodConfig::Mlb(mlb) => match mlb.beta {
            Some(beta) => format!("MLB (alpha {}, beta {beta})", mlb.alpha),
            None => format!("MLB (alpha {})", mlb.alpha),
        },
        MethodConfig::Ogm(ogm) if ogm.generalization_enhancement => {
            format!("OGM-GE (alpha {})", ogm.alpha)
        }
        MethodConfig::Ogm(ogm) => format!("OGM (alpha {})", ogm.alpha),
        MethodConfig::Agm(agm) => format!("AGM (alpha {})", agm.alpha),
        MethodConfig::Mslr(_) => "MSLR".into(),
        MethodConfig::MmCosine(cos) => format!("MMCosine (scale {})", cos.scale),
        MethodConfig::Pmr(pmr) => format!("PMR (alpha {})", pmr.alpha),
    }
}

#[component]
pub fn StatusBadge(status: RunStatus) -> impl IntoView {
    view! { <span class=format!("badge badge-{}", status.as_str())>{status.as_str()}</span> }
}
