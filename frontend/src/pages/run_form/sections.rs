//! The form's parts, top to bottom: where it starts from, the project, the dataset, the
//! method, the training settings, the sweep and the submit button; and the labelled input
//! they share, which shows its field's errors.

use balancelab_shared::{
    DatasetConfig, DatasetInfo, FieldError, FusionKind, MethodKind, Precision, Role,
};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use super::fields::{shows, toggle, FormFields, SweepFields, SHOWN_FIELDS};
use super::model_fields::shows_part_field;
use super::options::{
    dataset_of, dataset_value, method_option_text, uses_alpha, DATASETS, LOADED_DATASET,
};
use super::StartingPoint;
use crate::api;
use crate::pages::{caller_projects, in_place, url_with};

/// The choice of what the form starts from: the defaults, the run being cloned, or a preset.
#[component]
pub(super) fn StartFrom(start: StartingPoint) -> impl IntoView {
    let navigate = use_navigate();
    let query = use_query_map();
    let start_from = move |ev| {
        let value = event_target_value(&ev);
        let url = url_with(
            "/",
            query.get_untracked(),
            &[("from", String::new()), ("preset", value)],
        );
        navigate(&url, in_place());
    };
    let preset_options = move || {
        (start.presets.get().and_then(Result::ok).unwrap_or_default().into_iter())
            .map(|p| {
                let name = p.name.clone();
                // Selected by the option, not the select's value: the options come later.
                let selected = move || start.preset.get().as_deref() == Some(name.as_str());
                view! { <option value=p.name.clone() title=p.description.clone() selected=selected>{p.name.clone()}</option> }
            })
            .collect_view()
    };
    let preset_description = move || {
        let name = start.preset.get()?;
        let all = start.presets.get()?.ok()?;
        all.into_iter()
            .find(|p| p.name == name)
            .map(|p| p.description)
    };
    view! {
        <label class="field wide">
            <span>"Start from"</span>
            <select id="field-preset" prop:value=move || start.preset.get().unwrap_or_default() on:change=start_from>
                <option value="">{move || match start.from.get() {
                    Some(id) => format!("run #{id} (clone and edit)"),
                    None => "the defaults".to_owned(),
                }}</option>
                {preset_options}
            </select>
            <small class="hint">{preset_description}</small>
        </label>
    }
}

/// The project the run is started in: one the caller may start runs in, the first of them
/// until another is chosen (or a cloned run's, or the list's filter).
#[component]
pub(super) fn ProjectField(project: RwSignal<Option<i64>>) -> impl IntoView {
    let projects = caller_projects();
    let editable = move || {
        (projects
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter())
        .filter(|p| p.role >= Role::Editor)
        .collect::<Vec<_>>()
    };
    Effect::new(move |_| {
        let editable = editable();
        let chosen = project.get_untracked();
        if chosen.is_none_or(|id| !editable.iter().any(|p| p.id == id)) {
            if let Some(first) = editable.first() {
                project.set(Some(first.id));
            }
        }
    });
    let options = move || {
        (editable().into_iter())
            .map(|p| {
                let id = p.id;
                // Selected by each option, not by the select's value: the options come later.
                let selected = move || project.get() == Some(id);
                view! { <option value=id.to_string() selected=selected>{p.name}</option> }
            })
            .collect_view()
    };
    view! {
        <label class="field">
            <span>"Project"</span>
            <select id="field-project"
                on:change=move |ev| project.set(event_target_value(&ev).parse().ok())>
                {options}
            </select>
        </label>
    }
}

/// The dataset, with its attribution, and the noise of synthetic data.
#[component]
pub(super) fn DatasetFields(
    fields: FormFields,
    errors: RwSignal<Vec<FieldError>>,
) -> impl IntoView {
    let chosen = move || dataset_of(&fields.dataset.get(), &fields.loaded.get().dataset);
    let is_synthetic = move || matches!(chosen(), DatasetConfig::Synthetic(_));
    let catalog = LocalResource::new(api::list_datasets);
    let info = move |kind: &str| -> Option<DatasetInfo> {
        (catalog.get().and_then(Result::ok))
            .and_then(|all| all.into_iter().find(|d| d.kind == kind))
    };
    let dataset_options = move || {
        let loaded = fields.loaded.get().dataset;
        let loaded_option = (dataset_value(&loaded) == LOADED_DATASET).then(|| {
            let label = format!("{} as loaded (edit under All settings)", loaded.kind());
            view! { <option value=LOADED_DATASET>{label}</option> }
        });
        let options = (DATASETS.iter())
            .map(|&(value, label, kind)| {
                let available = info(kind).is_some_and(|d| d.available);
                let label = if available {
                    label.to_owned()
                } else {
                    format!("{label} (not found)")
                };
                view! { <option value=value disabled=!available>{label}</option> }
            })
            .collect_view();
        view! { {loaded_option} {options} }
    };
    let attribution = move || {
        info(chosen().kind())
            .map(|d| format!("{}. Source: {}. License: {}.", d.name, d.source, d.license))
    };
    view! {
        <label class="field wide">
            <span>"Dataset"</span>
            <select id="field-dataset" prop:value=move || fields.dataset.get()
                on:change=move |ev| {
                    fields.dataset.set(event_target_value(&ev));
                    errors.update(|all| all.retain(|e| !shows("dataset.kind", &e.field)));
                }>
                {dataset_options}
            </select>
            <small class="hint">{attribution}</small>
            <FieldErrorText field="dataset.kind" errors />
        </label>
        <Show when=is_synthetic>
            <InputField label="Noise per modality (comma-separated)" field="dataset.noise"
                value=fields.noise errors kind="text" />
        </Show>
    }
}

/// The method, its alpha if it has one, and the fusion.
#[component]
pub(super) fn MethodFields(fields: FormFields, errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    let choose_method = move |ev| {
        // Every option is a method's id.
        if let Some(kind) = MethodKind::from_id(&event_target_value(&ev)) {
            fields.method.set(kind);
        }
    };
    let choose_fusion = move |ev| fields.fusion.set(event_target_value(&ev));
    let choose_modality = move |ev| {
        // Every option is a modality's position.
        if let Ok(m) = event_target_value(&ev).parse() {
            fields.modality.set(m);
        }
    };
    view! {
        <label class="field wide">
            <span>"Method"</span>
            <select id="field-method" prop:value=move || fields.method.get().id() on:change=choose_method>
                {MethodKind::ALL.map(|kind| view! { <option value=kind.id()>{method_option_text(kind)}</option> })}
            </select>
            <FieldErrorText field="method" errors />
            <FieldErrorText field="method.kind" errors />
        </label>
        <Show when=move || uses_alpha(fields.method.get())>
            <InputField label="alpha" field="method.alpha" value=fields.alpha errors />
        </Show>
        <Show when=move || fields.method.get() == MethodKind::Unimodal>
            <label class="field">
                <span>"Modality alone"</span>
                <select id="field-method-modality" on:change=choose_modality>
                    // Each option marks itself: the names follow the dataset chosen.
                    {move || (fields.modality_names().into_iter().enumerate())
                        .map(|(m, name)| view! {
                            <option value=m.to_string() selected=move || fields.modality.get() == m>
                                {name}
                            </option>
                        })
                        .collect_view()}
                </select>
                <FieldErrorText field="method.modality" errors />
            </label>
        </Show>
        <label class="field">
            <span>"Fusion"</span>
            <select id="field-fusion" prop:value=move || fields.fusion.get() on:change=choose_fusion>
                {FusionKind::ALL.map(|f| view! { <option value=f.name()>{f.name()}</option> })}
            </select>
            <FieldErrorText field="model.fusion" errors />
        </label>
    }
}

/// Epochs, batch size, learning rate, validation split, seed, device and precision.
#[component]
pub(super) fn TrainingFields(
    fields: FormFields,
    errors: RwSignal<Vec<FieldError>>,
) -> impl IntoView {
    let choose_precision = move |ev| {
        // Every option is a precision's name.
        if let Some(precision) = Precision::from_name(&event_target_value(&ev)) {
            fields.precision.set(precision);
        }
    };
    view! {
        <InputField label="Epochs" field="epochs" value=fields.epochs errors />
        <InputField label="Batch size" field="batch_size" value=fields.batch_size errors />
        <InputField label="Learning rate" field="learning_rate" value=fields.learning_rate errors />
        <InputField label="Validation fraction" field="validation_fraction"
            value=fields.validation_fraction errors />
        <InputField label="Seed" field="seed" value=fields.seed errors />
        <InputField label="Device (cpu, cuda:N)" field="device" value=fields.device errors kind="text" />
        <label class="field">
            <span>"Precision"</span>
            <select id="field-precision" prop:value=move || fields.precision.get().name()
                on:change=choose_precision>
                {Precision::ALL.map(|p| view! { <option value=p.name()>{p.name()}</option> })}
            </select>
            <small class="hint">"tf32: TensorFloat-32 products, CUDA devices only"</small>
            <FieldErrorText field="precision" errors />
        </label>
    }
}

/// The sweep's axes: methods, fusions and seeds to try.
#[component]
pub(super) fn SweepSection(sweep: SweepFields, errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    view! {
        <details class="sweep wide" id="sweep">
            <summary>"Sweep: a grid of runs over methods, fusions and seeds"</summary>
            <Checkboxes legend="Methods (none ticked: the one above)" class="sweep-method"
                choices=MethodKind::ALL.map(|k| (k, k.id(), method_option_text(k))).into()
                ticked=sweep.methods />
            <Checkboxes legend="Fusions (none ticked: the one above)" class="sweep-fusion"
                choices=FusionKind::ALL.map(|f| (f, f.name(), f.name().to_owned())).into()
                ticked=sweep.fusions />
            <InputField label="Seeds (comma-separated; empty: the one above)" field="seeds"
                value=sweep.seeds errors kind="text" />
        </details>
    }
}

/// A fieldset of checkboxes (of class `class`), one per `(choice, value, text)`; `ticked`
/// holds the ticked choices.
#[component]
fn Checkboxes<T>(
    legend: &'static str,
    class: &'static str,
    choices: Vec<(T, &'static str, String)>,
    ticked: RwSignal<Vec<T>>,
) -> impl IntoView
where
    T: Copy + PartialEq + Send + Sync + 'static,
{
    let boxes = (choices.into_iter())
        .map(|(choice, value, text)| {
            view! {
                <label class="check">
                    <input type="checkbox" class=class value=value
                        on:change=move |ev| toggle(ticked, choice, event_target_checked(&ev)) />
                    {text}
                </label>
            }
        })
        .collect_view();
    view! { <fieldset><legend>{legend}</legend>{boxes}</fieldset> }
}

/// The submit button, saying how many runs it starts, the form's message, and the errors of
/// settings the form shows no field for.
#[component]
pub(super) fn FormActions(
    runs: Signal<usize>,
    busy: RwSignal<bool>,
    message: RwSignal<Option<String>>,
    errors: RwSignal<Vec<FieldError>>,
) -> impl IntoView {
    let submit_label = move || match runs.get() {
        1 => "Start run".to_owned(),
        n => format!("Start {n} runs"),
    };
    let other_errors = move || {
        errors.with(|all| {
            (all.iter())
                .filter(|e| !SHOWN_FIELDS.iter().any(|shown| shows(shown, &e.field)))
                .filter(|e| !shows_part_field(&e.field))
                .map(|e| view! { <li><code>{e.field.clone()}</code>": "{e.message.clone()}</li> })
                .collect_view()
        })
    };
    view! {
        <div class="actions">
            <button type="submit" id="start-run" disabled=move || busy.get()>{submit_label}</button>
            {move || message.get().map(|m| view! { <p class="form-message" role="alert">{m}</p> })}
            <ul class="field-errors">{other_errors}</ul>
        </div>
    }
}

/// The errors reported for `field` (and the fields inside it), under its control.
#[component]
fn FieldErrorText(field: &'static str, errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    let error = move || {
        errors.with(|all| {
            (all.iter())
                .filter(|e| shows(field, &e.field))
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    view! {
        <Show when=move || !error().is_empty()>
            <small class="field-error" data-field=field>{error}</small>
        </Show>
    }
}

/// A labelled input (a number unless `kind` says otherwise) showing the errors reported for `field`.
#[component]
pub(super) fn InputField(
    label: &'static str,
    field: &'static str,
    value: RwSignal<String>,
    errors: RwSignal<Vec<FieldError>>,
    /// The input's type: a number unless told otherwise.
    #[prop(default = "number")]
    kind: &'static str,
) -> impl IntoView {
    let invalid = move || errors.with(|all| all.iter().any(|e| shows(field, &e.field)));
    let id = format!("field-{}", field.replace(['.', '[', ']'], "-"));
    view! {
        <label class="field" class:invalid=invalid>
            <span>{label}</span>
            // Numbers as text: a browser's number input hands over "" for what it cannot
            // read (1e400, 1,5), and the form could not say what is wrong with it.
            <input id=id type="text"
                inputmode=if kind == "number" { "decimal" } else { "text" }
                prop:value=move || value.get()
                on:input=move |ev| {
                    value.set(event_target_value(&ev));
                    // Edited: its old errors no longer apply.
                    errors.update(|all| all.retain(|e| !shows(field, &e.field)));
                } />
            <FieldErrorText field errors />
        </label>
    }
}
