//! The app's pages, one per route.

mod compare;
mod home;
mod login;
mod projects;
mod run;
mod run_form;
mod run_notes;
mod runs;
mod share_dialog;
mod step_curves;

pub(crate) use compare::ComparePage;
pub(crate) use home::HomePage;
pub(crate) use login::{LoginPage, UserMenu};
pub(crate) use projects::ProjectsPage;
pub(crate) use run::RunPage;

use balancelab_shared::{
    AgmConfig, MethodConfig, MethodKind, OgmConfig, PmrConfig, Project, Role, RunStatus,
};
use leptos::prelude::*;
use leptos_router::params::ParamsMap;
use leptos_router::NavigateOptions;

use crate::api::ApiFailure;

/// `path` with the query `params` changed by `changes` (an empty value removes the key): how
/// a view whose state lives in the URL moves to its next state.
fn url_with(path: &str, params: ParamsMap, changes: &[(&str, String)]) -> String {
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

/// A labelled select of fixed `(value, text)` options that sets the query parameter `key`
/// of the page at `path`: a view setting kept in the URL.
#[component]
fn QuerySelect(
    id: &'static str,
    label: &'static str,
    key: &'static str,
    path: String,
    value: Signal<String>,
    options: &'static [(&'static str, &'static str)],
) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let navigate = leptos_router::hooks::use_navigate();
    let pick = move |ev| {
        let url = url_with(
            &path,
            query.get_untracked(),
            &[(key, event_target_value(&ev))],
        );
        navigate(&url, in_place());
    };
    let options = (options.iter())
        .map(|&(value, text)| view! { <option value=value>{text}</option> })
        .collect_view();
    view! {
        <label>
            <span>{label}</span>
            <select id=id prop:value=move || value.get() on:change=pick>{options}</select>
        </label>
    }
}

/// Navigation that replaces the current entry and keeps the scroll position: a view's
/// settings change, Back still leaves the page.
fn in_place() -> NavigateOptions {
    NavigateOptions {
        replace: true,
        scroll: false,
        ..NavigateOptions::default()
    }
}

/// A run's method with its main settings, as lists and legends show it: "MLB (alpha 0.8)",
/// "OGM-GE (alpha 0.8)", "joint".
fn method_and_settings(method: &MethodConfig) -> String {
    let label = MethodKind::from(method).label();
    match method {
        MethodConfig::Unimodal(alone) => format!("{label} (modality {})", alone.modality),
        MethodConfig::Joint | MethodConfig::MultiLoss(_) | MethodConfig::Mslr(_) => label.into(),
        MethodConfig::Mlb(mlb) => match mlb.beta {
            Some(beta) => format!("{label} (alpha {}, beta {beta})", mlb.alpha),
            None => format!("{label} (alpha {})", mlb.alpha),
        },
        MethodConfig::Ogm(OgmConfig { alpha, .. })
        | MethodConfig::Agm(AgmConfig { alpha, .. })
        | MethodConfig::Pmr(PmrConfig { alpha }) => format!("{label} (alpha {alpha})"),
        MethodConfig::MmCosine(cos) => format!("{label} (scale {})", cos.scale),
    }
}

/// "45 s", "12 min", "3 h 20 min": a duration as a reader rounds it.
fn duration_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", (seconds + 30) / 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// The caller's projects: the page's own list where it provides one (the start page reads
/// it once for its first-project check, its form and its filter), else read here.
fn caller_projects() -> LocalResource<Result<Vec<Project>, ApiFailure>> {
    use_context().unwrap_or_else(|| LocalResource::new(crate::api::list_projects))
}

/// `<option>`s of the caller's projects in which they have at least `at_least`, valued
/// by project id: the project pickers.
#[component]
fn ProjectOptions(at_least: Role) -> impl IntoView {
    let projects = caller_projects();
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

/// A run's status as a coloured badge.
#[component]
fn StatusBadge(status: RunStatus) -> impl IntoView {
    view! { <span class=format!("badge badge-{}", status.as_str())>{status.as_str()}</span> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_read_with_their_main_settings() {
        let cases = [
            (MethodConfig::Joint, "joint"),
            (MethodConfig::default(), "MLB (alpha 0.8)"),
            (MethodConfig::from(MethodKind::OgmGe), "OGM-GE (alpha 0.8)"),
            (MethodConfig::from(MethodKind::Ogm), "OGM (alpha 0.8)"),
            (
                MethodConfig::from(MethodKind::MmCosine),
                "MMCosine (scale 10)",
            ),
        ];
        for (method, text) in cases {
            assert_eq!(method_and_settings(&method), text);
        }
    }

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
            assert_eq!(duration_text(seconds), text);
        }
    }
}
