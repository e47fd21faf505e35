//! The new-run form: the common settings as fields, every other setting editable as JSON,
//! starting from the defaults, a paper's preset (`?preset=NAME`) or any run's configuration
//! ("clone and edit", `?from=ID`); one run or a sweep (a grid over methods, fusions and
//! seeds) in one go. Checked with the shared rules before sending; the server's 422 lands on
//! the same fields.

mod fields;
mod json_editor;
mod options;
mod sections;

use balancelab_shared::{
    DatasetConfig, DatasetInfo, FieldError, FusionKind, MethodKind, Role, RunConfig, Sweep,
};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};

use super::{in_place, url_with, ProjectOptions};
use crate::api::{self, ApiFailure};
use fields::{shows, toggle, FormFields, SweepFields, SHOWN_FIELDS};
use json_editor::AllSettings;
use options::{
    alpha_of, dataset_of, dataset_value, method_option_text, uses_alpha, DATASETS, LOADED_DATASET,
};
use sections::InputField;

#[component]
pub fn RunForm() -> impl IntoView {
    let fields = FormFields::new();
    let sweep = SweepFields::new();
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let project = RwSignal::new(None::<i64>);
    let navigate = use_navigate();
    let query = use_query_map();

    // What the form starts from: `?from=ID` (clone and edit) or `?preset=NAME`.
    let from = Memo::new(move |_| {
        query
            .read()
            .get("from")
            .and_then(|id| id.parse::<i64>().ok())
    });
    let preset = Memo::new(move |_| query.read().get("preset"));
    let presets = LocalResource::new(api::list_presets);
    let cloned = LocalResource::new(move || {
        let from = from.get();
        async move {
            match from {
                Some(id) => api::get_run(id, None).await.map(|detail| Some(detail.run)),
                None => Ok(None),
            }
        }
    });
    // Shows what the URL starts from once it has arrived: (configuration, its project).
    Effect::new(move |_| {
        let loaded = match (from.get(), preset.get()) {
            (Some(_), _) => match cloned.get() {
                Some(Ok(Some(run))) => Ok((run.config, Some(run.project_id))),
                Some(Err(ApiFailure(e))) => Err(e.message),
                _ => return,
            },
            (None, Some(name)) => match presets.get() {
                Some(Ok(all)) => (all.into_iter().find(|p| p.name == name))
                    .map(|p| (p.config, None))
                    .ok_or(format!("there is no preset named {name}")),
                Some(Err(ApiFailure(e))) => Err(e.message),
                None => return,
            },
            (None, None) => Ok((RunConfig::default(), None)),
        };
        match loaded {
            Ok((config, from_project)) => {
                fields.load(config);
                errors.set(Vec::new());
                if from_project.is_some() {
                    project.set(from_project);
                }
            }
            Err(problem) => message.set(Some(problem)),
        }
    });
    let start_from = {
        let navigate = navigate.clone();
        move |ev| {
            let value = event_target_value(&ev);
            let url = url_with(
                "/",
                query.get_untracked(),
                &[("from", String::new()), ("preset", value)],
            );
            navigate(&url, in_place());
        }
    };
    let preset_options = move || {
        (presets.get().and_then(Result::ok).unwrap_or_default().into_iter())
            .map(|p| view! { <option value=p.name.clone() title=p.description.clone()>{p.name.clone()}</option> })
            .collect_view()
    };
    let preset_description = move || {
        let name = preset.get()?;
        let all = presets.get()?.ok()?;
        all.into_iter()
            .find(|p| p.name == name)
            .map(|p| p.description)
    };

    let runs = move || {
        (fields.to_config().ok())
            .and_then(|config| sweep.to_sweep(config, 0.0).ok())
            .map_or(1, |s| s.run_count())
    };
    let sweeping = move || {
        sweep.methods.with(|m| !m.is_empty())
            || sweep.fusions.with(|f| !f.is_empty())
            || sweep.seeds.with(|s| !s.trim().is_empty())
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        message.set(None);
        let config = match fields.to_config() {
            Ok(config) => config,
            Err(found) => {
                errors.set(found);
                message.set(Some("Please correct the highlighted fields.".into()));
                return;
            }
        };
        let alpha = alpha_of(&config.method);
        let grid = if sweeping() {
            match sweep.to_sweep(config.clone(), alpha) {
                Ok(grid) => Some(grid),
                Err(error) => {
                    errors.set(vec![error]);
                    message.set(Some("Please correct the highlighted fields.".into()));
                    return;
                }
            }
        } else {
            None
        };
        if let Some(Err(found)) = grid.as_ref().map(Sweep::validate) {
            errors.set(found);
            message.set(Some("Some runs of the sweep are not valid.".into()));
            return;
        }
        errors.set(Vec::new());
        busy.set(true);
        let navigate = navigate.clone();
        let project = project.get_untracked();
        spawn_local(async move {
            let created = match grid {
                None => {
                    (api::create_run(&config, project).await).map(|run| format!("/runs/{}", run.id))
                }
                Some(grid) => (api::create_sweep(&grid, project).await).map(|runs| {
                    let tag = runs.first().and_then(|r| r.tags.first().cloned());
                    format!("/?tag={}", tag.unwrap_or_default())
                }),
            };
            match created {
                Ok(url) => navigate(&url, Default::default()),
                Err(ApiFailure(body)) => {
                    // A sweep's problems in the base configuration belong to the form's fields.
                    let fields = (body.fields.into_iter())
                        .map(|e| match e.field.strip_prefix("base.") {
                            Some(field) => FieldError::new(field, e.message),
                            None => e,
                        })
                        .collect();
                    errors.set(fields);
                    message.set(Some(body.message));
                }
            }
            busy.set(false);
        });
    };

    let has_alpha = move || uses_alpha(fields.method.get());
    let is_synthetic = move || {
        matches!(
            dataset_of(&fields.dataset.get(), &fields.loaded.get().dataset),
            DatasetConfig::Synthetic(_)
        )
    };
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
        let kind = dataset_of(&fields.dataset.get(), &fields.loaded.get().dataset).kind();
        info(kind).map(|d| format!("{}. Source: {}. License: {}.", d.name, d.source, d.license))
    };
    let other_errors = move || {
        errors.with(|all| {
            (all.iter())
                .filter(|e| !SHOWN_FIELDS.iter().any(|shown| shows(shown, &e.field)))
                .map(|e| view! { <li><code>{e.field.clone()}</code>": "{e.message.clone()}</li> })
                .collect_view()
        })
    };
    let submit_label = move || match runs() {
        1 => "Start run".to_owned(),
        n => format!("Start {n} runs"),
    };
    view! {
        <form class="run-form" on:submit=submit novalidate>
            <label class="field wide">
                <span>"Start from"</span>
                <select id="field-preset" prop:value=move || preset.get().unwrap_or_default() on:change=start_from>
                    <option value="">{move || match from.get() {
                        Some(id) => format!("run #{id} (clone and edit)"),
                        None => "the defaults".to_owned(),
                    }}</option>
                    {preset_options}
                </select>
                <small class="hint">{preset_description}</small>
            </label>
            <label class="field">
                <span>"Project"</span>
                <select id="field-project"
                    prop:value=move || project.get().map(|p| p.to_string()).unwrap_or_default()
                    on:change=move |ev| project.set(event_target_value(&ev).parse().ok())>
                    <option value="">"my first project"</option>
                    <ProjectOptions at_least=Role::Editor />
                </select>
            </label>
            <label class="field wide">
                <span>"Dataset"</span>
                <select id="field-dataset" prop:value=move || fields.dataset.get()
                    on:change=move |ev| fields.dataset.set(event_target_value(&ev))>
                    {dataset_options}
                </select>
                <small class="hint">{attribution}</small>
            </label>
            <Show when=is_synthetic>
                <InputField label="Noise per modality (comma-separated)" field="dataset.noise"
                    value=fields.noise errors kind="text" />
            </Show>
            <label class="field">
                <span>"Method"</span>
                <select id="field-method" prop:value=move || fields.method.get().id()
                    on:change=move |ev| {
                        // Every option is a method's id.
                        if let Some(kind) = MethodKind::from_id(&event_target_value(&ev)) {
                            fields.method.set(kind);
                        }
                    }>
                    {MethodKind::ALL.map(|kind| view! { <option value=kind.id()>{method_option_text(kind)}</option> })}
                </select>
            </label>
            <Show when=has_alpha>
                <InputField label="alpha" field="method.alpha" value=fields.alpha errors step="0.1" />
            </Show>
            <label class="field">
                <span>"Fusion"</span>
                <select id="field-fusion" prop:value=move || fields.fusion.get()
                    on:change=move |ev| fields.fusion.set(event_target_value(&ev))>
                    {FusionKind::ALL.map(|f| view! { <option value=f.name()>{f.name()}</option> })}
                </select>
            </label>
            <InputField label="Epochs" field="epochs" value=fields.epochs errors step="1" />
            <InputField label="Batch size" field="batch_size" value=fields.batch_size errors step="1" />
            <InputField label="Learning rate" field="learning_rate" value=fields.learning_rate errors />
            <InputField label="Validation fraction" field="validation_fraction"
                value=fields.validation_fraction errors step="0.05" />
            <InputField label="Seed" field="seed" value=fields.seed errors step="1" />
            <InputField label="Device (cpu, cuda:N)" field="device" value=fields.device errors kind="text" />
            <AllSettings fields errors message />
            <details class="sweep wide" id="sweep">
                <summary>"Sweep: a grid of runs over methods, fusions and seeds"</summary>
                <fieldset>
                    <legend>"Methods (none ticked: the one above)"</legend>
                    {MethodKind::ALL.map(|kind| view! {
                        <label class="check">
                            <input type="checkbox" class="sweep-method" value=kind.id()
                                on:change=move |ev| toggle(sweep.methods, kind, event_target_checked(&ev)) />
                            {method_option_text(kind)}
                        </label>
                    })}
                </fieldset>
                <fieldset>
                    <legend>"Fusions (none ticked: the one above)"</legend>
                    {FusionKind::ALL.map(|f| view! {
                        <label class="check">
                            <input type="checkbox" class="sweep-fusion" value=f.name()
                                on:change=move |ev| toggle(sweep.fusions, f, event_target_checked(&ev)) />
                            {f.name()}
                        </label>
                    })}
                </fieldset>
                <InputField label="Seeds (comma-separated; empty: the one above)" field="seeds"
                    value=sweep.seeds errors kind="text" />
            </details>
            <div class="actions">
                <button type="submit" id="start-run" disabled=move || busy.get()>{submit_label}</button>
                {move || message.get().map(|m| view! { <p class="form-message" role="alert">{m}</p> })}
                <ul class="field-errors">{other_errors}</ul>
            </div>
        </form>
    }
}
