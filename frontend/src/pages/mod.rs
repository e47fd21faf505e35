//! The app's pages, one per route.

mod compare;
mod home;
mod login;
mod run;
mod run_form;
mod runs;
mod share_dialog;
mod step_curves;

pub use compare::ComparePage;
pub use home::HomePage;
pub use login::{LoginPage, UserMenu};
pub use run::RunPage;

use balancelab_shared::{MethodConfig, Role, RunStatus};
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

/// "45 s", "12 min", "3 h 20 min": a duration as a reader rounds it.
pub fn duration_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", (seconds + 30) / 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// `<option>`s of the caller's projects in which they have at least `at_least`, valued
/// by project id: the project pickers.
#[component]
pub fn ProjectOptions(at_least: Role) -> impl IntoView {
    let projects = LocalResource::new(crate::api::list_projects);
    move || {
        (projects
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter())
        .filter(|p| p.role >= at_least)
        .map(|p| view! { <option value=p.id.to_string()>{p.name}</option> })
        .collect_view()
    }
}

#[component]
pub fn StatusBadge(status: RunStatus) -> impl IntoView {
    view! { <span class=format!("badge badge-{}", status.as_str())>{status.as_str()}</span> }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_round_them() {
        let cases = [
            (0.4, "0 s"),
            (59.0, "59 s"),
            (89.0, "1 min"),
            (90.0, "2 min"),
            (12_000.0, "3 h 20 min"),
        ];
        for (seconds, text) in cases {
            assert_eq!(super::duration_text(seconds), text);
        }
    }
}
