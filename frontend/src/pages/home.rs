//! The start page: a form that starts runs, and the list of runs.

use leptos::prelude::*;

/// `/`: the new-run form above the run list.
#[component]
pub(crate) fn HomePage() -> impl IntoView {
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
