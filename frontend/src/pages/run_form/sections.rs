//! The form's parts: a labelled input that shows its field's errors.

use balancelab_shared::FieldError;
use leptos::prelude::*;

use super::fields::shows;

/// A labelled input (a number unless `kind` says otherwise) showing the errors reported for `field`.
#[component]
pub(super) fn InputField(
    label: &'static str,
    field: &'static str,
    value: RwSignal<String>,
    errors: RwSignal<Vec<FieldError>>,
    #[prop(default = "any")] step: &'static str,
    /// The input's type: a number unless told otherwise.
    #[prop(default = "number")]
    kind: &'static str,
) -> impl IntoView {
    let error = move || {
        errors.with(|all| {
            (all.iter())
                .filter(|e| shows(field, &e.field))
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    let id = format!("field-{}", field.replace(['.', '[', ']'], "-"));
    view! {
        <label class="field" class:invalid=move || !error().is_empty()>
            <span>{label}</span>
            <input id=id type=kind step=step prop:value=move || value.get()
                on:input=move |ev| {
                    value.set(event_target_value(&ev));
                    // Edited: its old errors no longer apply.
                    errors.update(|all| all.retain(|e| !shows(field, &e.field)));
                } />
            <Show when=move || !error().is_empty()>
                <small class="field-error" data-field=field>{error}</small>
            </Show>
        </label>
    }
}
