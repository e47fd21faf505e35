//! The start page: a form that starts runs, and the list of runs; for someone in no project
//! yet, the project to create first.

use leptos::prelude::*;

use super::projects::NewProject;
use crate::api;

/// `/`: the new-run form above the run list, or first a project for a newcomer.
#[component]
pub(crate) fn HomePage() -> impl IntoView {
    // Bumped when the newcomer has made their first project.
    let created = RwSignal::new(0u32);
    let projects = LocalResource::new(move || {
        created.track();
        api::list_projects()
    });
    // The form's project picker and the list's filter read this list too.
    provide_context(projects);
    // Runs live in projects: without one, nothing can be started or listed yet.
    let newcomer =
        move || (projects.get().and_then(Result::ok)).is_some_and(|list| list.is_empty());
    let me = LocalResource::new(api::me);
    let greeting = move || {
        let name = me.get().and_then(Result::ok).map(|m| m.user.name);
        format!(
            "Welcome{}",
            name.map(|n| format!(", {n}")).unwrap_or_default()
        )
    };
    view! {
        <Show when=newcomer fallback=|| view! { <RunsHome /> }>
            <section class="card" id="first-project">
                <h1>{greeting}</h1>
                <p>
                    "Runs live in projects, with the people who may see them. You are in none yet: "
                    "create your own below, or ask a teammate to add you to theirs (they do it from "
                    "a run's Share dialog or the Projects page)."
                </p>
                <NewProject on_created=Callback::new(move |_| created.update(|n| *n += 1)) />
            </section>
        </Show>
    }
}

/// The new-run form and the run list.
#[component]
fn RunsHome() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"New run"</h1>
            <p class="hint">
                "Two modalities, one encoder and one unimodal head each, and a fusion head. "
                "MLB multiplies each modality's gradients by k = 1 + tanh(alpha (r - 1)), "
                "r = the other head's confidence over its own, so the weaker modality speeds up."
            </p>
            <super::run_form::RunForm />
        </section>
        <section class="card">
            <h2>"Runs"</h2>
            <super::runs::RunList />
        </section>
    }
}
