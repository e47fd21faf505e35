//! The new-run form: the common settings as fields, every other setting editable as JSON,
//! starting from the defaults, a paper's preset (`?preset=NAME`) or any run's configuration
//! ("clone and edit", `?from=ID`); one run or a sweep (a grid over methods, fusions and
//! seeds) in one go. Checked with the shared rules before sending; the server's 422 lands on
//! the same fields.

mod fields;
mod json_editor;
mod model_fields;
mod options;
mod sections;

use balancelab_shared::{ErrorBody, FieldError, Preset, Run, RunConfig, Sweep};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{self, ApiFailure};
use fields::{FormFields, SweepFields};
use json_editor::AllSettings;
use options::alpha_of;
use sections::{
    DatasetFields, FormActions, MethodFields, ProjectField, StartFrom, SweepSection, TrainingFields,
};

/// The new-run form of the start page.
#[component]
pub(super) fn RunForm() -> impl IntoView {
    let fields = FormFields::new();
    let sweep = SweepFields::new();
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let project = RwSignal::new(None::<i64>);
    let start = StartingPoint::from_url();
    Effect::new(move |_| {
        let Some(loaded) = start.loaded() else {
            return;
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
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        message.set(None);
        let request = match checked_request(fields, sweep) {
            Ok(request) => request,
            Err((found, problem)) => {
                errors.set(found);
                message.set(Some(problem.into()));
                return;
            }
        };
        errors.set(Vec::new());
        busy.set(true);
        let navigate = navigate.clone();
        let project = project.get_untracked();
        spawn_local(async move {
            match send(request, project).await {
                Ok(url) => navigate(&url, Default::default()),
                Err(body) => {
                    errors.set(on_form_fields(body.fields));
                    message.set(Some(body.message));
                }
            }
            busy.set(false);
        });
    };
    let runs = Signal::derive(move || {
        (fields.to_config().ok())
            .and_then(|config| sweep.to_sweep(config, 0.0).ok())
            .map_or(1, |s| s.run_count())
    });
    view! {
        <form class="run-form" on:submit=submit novalidate>
            <StartFrom start />
            <ProjectField project />
            <DatasetFields fields errors />
            <MethodFields fields errors />
            <TrainingFields fields errors />
            <model_fields::PartsFields parts=fields.parts loaded=fields.loaded errors />
            <AllSettings fields errors message />
            <SweepSection sweep errors />
            <FormActions runs busy message errors />
        </form>
    }
}

/// What the form starts from, as the URL says: `?from=ID` (clone and edit), `?preset=NAME`,
/// or else the defaults.
#[derive(Clone, Copy)]
struct StartingPoint {
    /// The run cloned, by id.
    from: Memo<Option<i64>>,
    /// The preset started from, by name.
    preset: Memo<Option<String>>,
    presets: LocalResource<Result<Vec<Preset>, ApiFailure>>,
    cloned: LocalResource<Result<Option<Run>, ApiFailure>>,
}

impl StartingPoint {
    /// Reads the URL's query, and asks for the run it names and for the presets.
    fn from_url() -> Self {
        let query = use_query_map();
        let from = Memo::new(move |_| {
            query
                .read()
                .get("from")
                .and_then(|id| id.parse::<i64>().ok())
        });
        let cloned = LocalResource::new(move || {
            let from = from.get();
            async move {
                match from {
                    Some(id) => api::get_run(id, None).await.map(|detail| Some(detail.run)),
                    None => Ok(None),
                }
            }
        });
        Self {
            from,
            preset: Memo::new(move |_| query.read().get("preset")),
            presets: LocalResource::new(api::list_presets),
            cloned,
        }
    }

    /// The configuration to show and its project once it has arrived, or why there is none.
    fn loaded(self) -> Option<Result<(RunConfig, Option<i64>), String>> {
        let loaded = match (self.from.get(), self.preset.get()) {
            (Some(_), _) => match self.cloned.get()? {
                Ok(Some(run)) => Ok((run.config, Some(run.project_id))),
                Err(ApiFailure(e)) => Err(e.message),
                // Not loaded for this id yet: the answer for the URL before.
                Ok(None) => return None,
            },
            (None, Some(name)) => match self.presets.get()? {
                Ok(all) => (all.into_iter().find(|p| p.name == name))
                    .map(|p| (p.config, None))
                    .ok_or(format!("there is no preset named {name}")),
                Err(ApiFailure(e)) => Err(e.message),
            },
            (None, None) => Ok((RunConfig::default(), None)),
        };
        Some(loaded)
    }
}

/// What the form sends: one run, or a sweep's grid of runs.
enum Request {
    Run(RunConfig),
    Sweep(Sweep),
}

/// The request the form describes, checked with the shared rules; or the fields that are
/// wrong and what to tell the user.
fn checked_request(
    fields: FormFields,
    sweep: SweepFields,
) -> Result<Request, (Vec<FieldError>, &'static str)> {
    const CORRECT_THEM: &str = "Please correct the highlighted fields.";
    let config = fields.to_config().map_err(|found| (found, CORRECT_THEM))?;
    if !sweep.is_chosen() {
        return Ok(Request::Run(config));
    }
    let alpha = alpha_of(&config.method);
    let grid = (sweep.to_sweep(config, alpha)).map_err(|error| (vec![error], CORRECT_THEM))?;
    if let Err(found) = grid.validate() {
        return Err((found, "Some runs of the sweep are not valid."));
    }
    Ok(Request::Sweep(grid))
}

/// Sends `request` to `project`; where to go next: the new run's page, or the list of the
/// sweep's runs.
async fn send(request: Request, project: Option<i64>) -> Result<String, ErrorBody> {
    let created = match request {
        Request::Run(config) => {
            (api::create_run(&config, project).await).map(|run| format!("/runs/{}", run.id))
        }
        Request::Sweep(grid) => (api::create_sweep(&grid, project).await).map(|runs| {
            let tag = runs.first().and_then(|r| r.tags.first().cloned());
            format!("/?tag={}", tag.unwrap_or_default())
        }),
    };
    created.map_err(|ApiFailure(body)| body)
}

/// The server's field errors as the form's fields name them: a sweep's problems in its base
/// configuration belong to the form's fields.
fn on_form_fields(errors: Vec<FieldError>) -> Vec<FieldError> {
    (errors.into_iter())
        .map(|e| match e.field.strip_prefix("base.") {
            Some(field) => FieldError::new(field, e.message),
            None => e,
        })
        .collect()
}
