//! The new-run form: the common settings as fields, every other setting editable as JSON,
//! starting from the defaults, a paper's preset (`?preset=NAME`) or any run's configuration
//! ("clone and edit", `?from=ID`); one run or a sweep (a grid over methods, fusions and
//! seeds) in one go. Checked with the shared rules before sending; the server's 422 lands on
//! the same fields.

use balancelab_shared::{
    AgmConfig, AvDigitsConfig, AvDigitsSplit, AveConfig, ComputeDevice, CremaDConfig, CremaDSplit,
    DatasetConfig, DatasetInfo, FieldError, FusionKind, MethodConfig, MfeatConfig, MfeatView,
    MlbConfig, MmCosineConfig, MslrConfig, MultiLossConfig, OgmConfig, PmrConfig, Role, RunConfig,
    SplitConfig, Sweep, SyntheticConfig, Ucf101Config, Ucf101Modalities,
};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};

use super::{in_place, url_with, ProjectOptions};
use crate::api::{self, ApiFailure};

/// The form's methods: (option value, label). `ogm_ge` and `ogm` are one engine method
/// with and without generalisation enhancement.
const METHODS: [(&str, &str); 9] = [
    ("joint", "Joint training (fused loss only)"),
    ("multi_loss", "Multi-loss (fused + unimodal heads)"),
    ("mlb", "MLB (multi-loss + gradient balancing)"),
    ("ogm_ge", "OGM-GE (on-the-fly modulation + noise)"),
    ("ogm", "OGM (on-the-fly modulation)"),
    ("agm", "AGM (adaptive gradient modulation)"),
    ("mslr", "MSLR (modality-specific learning rates)"),
    ("mm_cosine", "MMCosine (cosine fusion)"),
    ("pmr", "PMR (prototypical rebalance)"),
];

/// The form's option value for `method`.
fn method_value(method: &MethodConfig) -> &'static str {
    match method {
        MethodConfig::Ogm(ogm) if ogm.generalization_enhancement => "ogm_ge",
        other => other.name(),
    }
}

/// Whether the method chosen in the form (by its option value) has an alpha.
fn uses_alpha(method: &str) -> bool {
    matches!(method, "mlb" | "ogm_ge" | "ogm" | "agm" | "pmr")
}

/// The method `value` with `alpha`: `loaded`'s own settings if it is that method (so a
/// preset's or a cloned run's other method settings are kept), else the defaults.
fn method_with(value: &str, alpha: f64, loaded: &MethodConfig) -> MethodConfig {
    let same = method_value(loaded) == value;
    let mut method = match value {
        _ if same => loaded.clone(),
        "joint" => MethodConfig::Joint,
        "multi_loss" => MethodConfig::MultiLoss(MultiLossConfig::default()),
        "ogm_ge" | "ogm" => MethodConfig::Ogm(OgmConfig {
            generalization_enhancement: value == "ogm_ge",
            ..OgmConfig::default()
        }),
        "agm" => MethodConfig::Agm(AgmConfig::default()),
        "mslr" => MethodConfig::Mslr(MslrConfig::default()),
        "mm_cosine" => MethodConfig::MmCosine(MmCosineConfig::default()),
        "pmr" => MethodConfig::Pmr(PmrConfig::default()),
        _ => MethodConfig::Mlb(MlbConfig::default()),
    };
    match &mut method {
        MethodConfig::Mlb(m) => m.alpha = alpha,
        MethodConfig::Ogm(m) => m.alpha = alpha,
        MethodConfig::Agm(m) => m.alpha = alpha,
        MethodConfig::Pmr(m) => m.alpha = alpha,
        _ => {}
    }
    method
}

fn alpha_of(method: &MethodConfig) -> f64 {
    match method {
        MethodConfig::Mlb(m) => m.alpha,
        MethodConfig::Ogm(m) => m.alpha,
        MethodConfig::Agm(m) => m.alpha,
        MethodConfig::Pmr(m) => m.alpha,
        _ => MlbConfig::default().alpha,
    }
}

/// The form's dataset options: (value, label, catalog kind).
const DATASETS: [(&str, &str, &str); 12] = [
    (
        "synthetic",
        "Synthetic clusters (noise per modality)",
        "synthetic",
    ),
    (
        "mfeat_fac_mor",
        "UCI mfeat: fac + mor (strongly imbalanced)",
        "mfeat",
    ),
    ("mfeat_pix_zer", "UCI mfeat: pix + zer", "mfeat"),
    ("mfeat_fac_zer", "UCI mfeat: fac + zer", "mfeat"),
    (
        "av_digits",
        "AV digits: spoken digit + MNIST image",
        "av_digits",
    ),
    (
        "av_digits_speaker",
        "AV digits, unseen speaker (theo)",
        "av_digits",
    ),
    (
        "digits_halves",
        "Optical digits: left + right halves",
        "digits_halves",
    ),
    (
        "crema_d",
        "CREMA-D: audio + frames (train/test CSV)",
        "crema_d",
    ),
    (
        "crema_d_fold",
        "CREMA-D, speaker-independent fold 0 of 5",
        "crema_d",
    ),
    ("ave", "AVE: event audio + 4 frames", "ave"),
    (
        "ucf101_audio_rgb",
        "UCF101: audio + RGB (51 classes)",
        "ucf101",
    ),
    ("ucf101_rgb_flow", "UCF101: RGB + optical flow", "ucf101"),
];

/// The option value of a loaded configuration's dataset when none of the options is it.
const LOADED_DATASET: &str = "loaded";

/// The dataset of option `value`; `loaded` for [`LOADED_DATASET`].
fn dataset_of(value: &str, loaded: &DatasetConfig) -> DatasetConfig {
    let mfeat = |views: [MfeatView; 2]| {
        DatasetConfig::Mfeat(MfeatConfig {
            views: views.to_vec(),
            ..MfeatConfig::default()
        })
    };
    match value {
        LOADED_DATASET => loaded.clone(),
        "mfeat_fac_mor" => mfeat([MfeatView::Fac, MfeatView::Mor]),
        "mfeat_pix_zer" => mfeat([MfeatView::Pix, MfeatView::Zer]),
        "mfeat_fac_zer" => mfeat([MfeatView::Fac, MfeatView::Zer]),
        "av_digits" => DatasetConfig::AvDigits(AvDigitsConfig::default()),
        "av_digits_speaker" => DatasetConfig::AvDigits(AvDigitsConfig {
            split: AvDigitsSplit::Speaker,
            ..AvDigitsConfig::default()
        }),
        "digits_halves" => DatasetConfig::DigitsHalves(SplitConfig::default()),
        "crema_d" => DatasetConfig::CremaD(CremaDConfig::default()),
        "crema_d_fold" => DatasetConfig::CremaD(CremaDConfig {
            split: CremaDSplit::SpeakerFold,
            ..CremaDConfig::default()
        }),
        "ave" => DatasetConfig::Ave(AveConfig::default()),
        "ucf101_audio_rgb" => DatasetConfig::Ucf101(Ucf101Config::default()),
        "ucf101_rgb_flow" => DatasetConfig::Ucf101(Ucf101Config {
            modalities: Ucf101Modalities::RgbFlow,
            ..Ucf101Config::default()
        }),
        _ => DatasetConfig::Synthetic(SyntheticConfig::default()),
    }
}

/// The option showing `dataset`: synthetic data of any noise is "synthetic", anything else
/// must equal an option exactly, or it is kept as loaded.
fn dataset_value(dataset: &DatasetConfig) -> &'static str {
    if let DatasetConfig::Synthetic(s) = dataset {
        let defaults = SyntheticConfig::default();
        if (s.classes, s.features, s.train_samples, s.test_samples)
            == (
                defaults.classes,
                defaults.features,
                defaults.train_samples,
                defaults.test_samples,
            )
        {
            return "synthetic";
        }
        return LOADED_DATASET;
    }
    (DATASETS.iter())
        .find(|(value, ..)| dataset_of(value, dataset) == *dataset)
        .map_or(LOADED_DATASET, |(value, ..)| value)
}

fn list_text<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The form's inputs, kept as typed text until submitted, over the configuration they
/// were loaded from, which supplies every setting the form does not show.
#[derive(Clone, Copy)]
struct FormFields {
    loaded: RwSignal<RunConfig>,
    dataset: RwSignal<String>,
    noise: RwSignal<String>,
    method: RwSignal<String>,
    alpha: RwSignal<String>,
    fusion: RwSignal<String>,
    epochs: RwSignal<String>,
    batch_size: RwSignal<String>,
    learning_rate: RwSignal<String>,
    validation_fraction: RwSignal<String>,
    seed: RwSignal<String>,
    device: RwSignal<String>,
}

/// The fields the form shows: errors for others are listed under it.
const SHOWN_FIELDS: [&str; 12] = [
    "seeds",
    "dataset.kind",
    "dataset.noise",
    "method",
    "method.alpha",
    "model.fusion",
    "epochs",
    "batch_size",
    "learning_rate",
    "validation_fraction",
    "seed",
    "device",
];

/// Whether the input of `field` shows the error of `error_field` (`dataset.noise` shows
/// `dataset.noise[1]`).
fn shows(field: &str, error_field: &str) -> bool {
    error_field
        .strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
}

impl FormFields {
    fn new() -> Self {
        let text = || RwSignal::new(String::new());
        let fields = Self {
            loaded: RwSignal::new(RunConfig::default()),
            dataset: text(),
            noise: text(),
            method: text(),
            alpha: text(),
            fusion: text(),
            epochs: text(),
            batch_size: text(),
            learning_rate: text(),
            validation_fraction: text(),
            seed: text(),
            device: text(),
        };
        fields.load(RunConfig::default());
        fields
    }

    /// Shows `config` in the form.
    fn load(self, config: RunConfig) {
        self.dataset.set(dataset_value(&config.dataset).to_owned());
        let noise = match &config.dataset {
            DatasetConfig::Synthetic(s) => s.noise.clone(),
            _ => SyntheticConfig::default().noise,
        };
        self.noise.set(list_text(&noise));
        self.method.set(method_value(&config.method).to_owned());
        self.alpha.set(alpha_of(&config.method).to_string());
        self.fusion.set(config.model.fusion.name().to_owned());
        self.epochs.set(config.epochs.to_string());
        self.batch_size.set(config.batch_size.to_string());
        self.learning_rate.set(config.learning_rate.to_string());
        self.validation_fraction
            .set(config.validation_fraction.to_string());
        self.seed.set(config.seed.to_string());
        self.device.set(config.device.to_string());
        self.loaded.set(config);
    }

    /// The configuration the form describes, or every field that is wrong (checked with
    /// the rules the server applies).
    fn to_config(self) -> Result<RunConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut parse = |field: &str, text: String, what: &str| {
            let parsed = text.trim().parse::<f64>();
            if parsed.is_err() {
                errors.push(FieldError::new(field, format!("must be {what}")));
            }
            parsed.unwrap_or(f64::NAN)
        };
        let learning_rate = parse("learning_rate", self.learning_rate.get(), "a number");
        let validation_fraction = parse(
            "validation_fraction",
            self.validation_fraction.get(),
            "a number",
        );
        let alpha = parse("method.alpha", self.alpha.get(), "a number");
        let mut whole = |field: &str, text: String| match text.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                errors.push(FieldError::new(field, "must be a whole number"));
                0
            }
        };
        let epochs = whole("epochs", self.epochs.get());
        let batch_size = whole("batch_size", self.batch_size.get());
        let seed = whole("seed", self.seed.get());
        let noise: Result<Vec<f64>, _> = (self.noise.get().split(','))
            .map(|n| n.trim().parse::<f64>())
            .collect();
        let device = self.device.get().parse::<ComputeDevice>();
        if let Err(message) = &device {
            errors.push(FieldError::new("device", message.clone()));
        }
        let method = self.method.get();
        if !uses_alpha(&method) {
            errors.retain(|e| e.field != "method.alpha");
        }
        let loaded = self.loaded.get();
        let mut dataset = dataset_of(&self.dataset.get(), &loaded.dataset);
        if let DatasetConfig::Synthetic(synthetic) = &mut dataset {
            match noise {
                Ok(noise) => synthetic.noise = noise,
                Err(_) => errors.push(FieldError::new(
                    "dataset.noise",
                    "must be numbers separated by commas, one per modality",
                )),
            }
        }
        let fusion = (FusionKind::ALL.into_iter())
            .find(|f| f.name() == self.fusion.get())
            .unwrap_or(loaded.model.fusion);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut config = RunConfig {
            dataset,
            method: method_with(&method, alpha, &loaded.method),
            epochs: u32::try_from(epochs).unwrap_or(u32::MAX),
            batch_size: u32::try_from(batch_size).unwrap_or(u32::MAX),
            learning_rate,
            validation_fraction,
            seed,
            device: device.unwrap_or_default(),
            ..loaded
        };
        config.model.fusion = fusion;
        config.validate().map(|()| config)
    }
}

/// The sweep's axes as chosen in the form.
#[derive(Clone, Copy)]
struct SweepFields {
    methods: RwSignal<Vec<String>>,
    fusions: RwSignal<Vec<String>>,
    seeds: RwSignal<String>,
}

impl SweepFields {
    fn new() -> Self {
        Self {
            methods: RwSignal::new(Vec::new()),
            fusions: RwSignal::new(Vec::new()),
            seeds: RwSignal::new(String::new()),
        }
    }

    /// The sweep over `base` (methods take the form's alpha), or why the seeds are wrong.
    fn to_sweep(self, base: RunConfig, alpha: f64) -> Result<Sweep, FieldError> {
        let seeds = self.seeds.get();
        let seeds: Vec<u64> = (seeds.split(',').map(str::trim).filter(|s| !s.is_empty()))
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| FieldError::new("seeds", "whole numbers separated by commas"))?;
        let methods = (self.methods.get().iter())
            .map(|value| method_with(value, alpha, &base.method))
            .collect();
        let fusions = (FusionKind::ALL.into_iter())
            .filter(|f| {
                self.fusions
                    .with(|chosen| chosen.iter().any(|c| c == f.name()))
            })
            .collect();
        Ok(Sweep {
            methods,
            fusions,
            seeds,
            ..Sweep::new(base)
        })
    }
}

/// A toggle in a list of chosen values.
fn toggle(list: RwSignal<Vec<String>>, value: &'static str, on: bool) {
    list.update(|l| {
        l.retain(|v| v != value);
        if on {
            l.push(value.to_owned());
        }
    });
}

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

    let has_alpha = move || uses_alpha(&fields.method.get());
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
                <select id="field-method" prop:value=move || fields.method.get()
                    on:change=move |ev| fields.method.set(event_target_value(&ev))>
                    {METHODS.map(|(value, label)| view! { <option value=value>{label}</option> })}
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
                    {METHODS.map(|(value, label)| view! {
                        <label class="check">
                            <input type="checkbox" class="sweep-method" value=value
                                on:change=move |ev| toggle(sweep.methods, value, event_target_checked(&ev)) />
                            {label}
                        </label>
                    })}
                </fieldset>
                <fieldset>
                    <legend>"Fusions (none ticked: the one above)"</legend>
                    {FusionKind::ALL.map(|f| view! {
                        <label class="check">
                            <input type="checkbox" class="sweep-fusion" value=f.name()
                                on:change=move |ev| toggle(sweep.fusions, f.name(), event_target_checked(&ev)) />
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

/// Every setting of the engine as JSON: opened, it shows what the form would send; applied,
/// the form takes it (fields it does not show included).
#[component]
fn AllSettings(
    fields: FormFields,
    errors: RwSignal<Vec<FieldError>>,
    message: RwSignal<Option<String>>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let refresh = move || {
        let config = fields.to_config().unwrap_or_else(|_| fields.loaded.get());
        text.set(serde_json::to_string_pretty(&config).expect("a RunConfig serializes"));
    };
    let apply = move |_| {
        let json = text.get();
        let mut deserializer = serde_json::Deserializer::from_str(&json);
        match serde_path_to_error::deserialize::<_, RunConfig>(&mut deserializer) {
            Ok(config) => {
                fields.load(config);
                errors.set(Vec::new());
                message.set(None);
            }
            Err(e) => {
                let field = e.path().to_string();
                errors.set(vec![FieldError::new(field, e.into_inner().to_string())]);
                message.set(Some("The settings are not a valid configuration.".into()));
            }
        }
    };
    view! {
        <details class="all-settings wide" on:toggle=move |_| refresh()>
            <summary>"All settings (JSON): encoder, optimiser, schedule, method details..."</summary>
            <textarea id="all-settings" rows="18" spellcheck="false" aria-label="all settings as JSON"
                prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev)) />
            <button type="button" id="apply-settings" on:click=apply>"Use these settings"</button>
        </details>
    }
}

/// A labelled input (a number unless `kind` says otherwise) showing the errors reported for `field`.
#[component]
fn InputField(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_option_shows_as_itself() {
        for (value, ..) in DATASETS {
            let dataset = dataset_of(value, &DatasetConfig::default());
            assert_eq!(dataset_value(&dataset), value);
        }
        let custom = DatasetConfig::CremaD(CremaDConfig {
            frames: 3,
            ..CremaDConfig::default()
        });
        assert_eq!(dataset_value(&custom), LOADED_DATASET);
        assert_eq!(dataset_of(LOADED_DATASET, &custom), custom);
    }

    /// Signals need a reactive owner, as in the browser.
    fn in_owner<T>(f: impl FnOnce() -> T) -> T {
        leptos::prelude::Owner::new().with(f)
    }

    #[test]
    fn a_loaded_configuration_comes_back_unchanged() {
        in_owner(|| {
            let fields = FormFields::new();
            let loaded = [
                RunConfig {
                    method: MethodConfig::Ogm(OgmConfig {
                        alpha: 0.3,
                        generalization_enhancement: true,
                        end_epoch: Some(5),
                        ..OgmConfig::default()
                    }),
                    dataset: DatasetConfig::CremaD(CremaDConfig {
                        frames: 3,
                        ..CremaDConfig::default()
                    }),
                    batch_size: 16,
                    early_stopping_patience: Some(4),
                    ..RunConfig::default()
                },
                RunConfig {
                    dataset: DatasetConfig::Synthetic(SyntheticConfig {
                        noise: vec![0.5, 1.0, 4.0],
                        ..SyntheticConfig::default()
                    }),
                    ..RunConfig::default()
                },
            ];
            for config in loaded {
                fields.load(config.clone());
                // Every setting, shown or not, is what was loaded: clone and edit keeps them.
                assert_eq!(fields.to_config(), Ok(config));
            }
        });
    }

    #[test]
    fn edits_are_checked_and_named_by_field() {
        in_owner(|| {
            let fields = FormFields::new();
            fields.epochs.set("0".into());
            fields.learning_rate.set("fast".into());
            fields.noise.set("1.5, x".into());
            let errors = fields.to_config().unwrap_err();
            let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(named, ["learning_rate", "dataset.noise"]);
            fields.learning_rate.set("0.1".into());
            fields.noise.set("1.5, 3".into());
            let errors = fields.to_config().unwrap_err();
            assert_eq!(errors[0].field, "epochs", "the shared rules: {errors:?}");
            fields.epochs.set("3".into());
            fields.method.set("agm".into());
            fields.alpha.set("0.5".into());
            let config = fields.to_config().unwrap();
            assert_eq!(config.epochs, 3);
            assert!(
                matches!(config.method, MethodConfig::Agm(AgmConfig { alpha, .. }) if alpha == 0.5)
            );
        });
    }

    #[test]
    fn a_sweep_takes_the_forms_alpha_and_parses_its_seeds() {
        in_owner(|| {
            let sweep = SweepFields::new();
            toggle(sweep.methods, "joint", true);
            toggle(sweep.methods, "pmr", true);
            toggle(sweep.fusions, "gated", true);
            sweep.seeds.set("1, 2,3".into());
            let grid = sweep.to_sweep(RunConfig::default(), 0.25).unwrap();
            assert_eq!(grid.run_count(), 6);
            assert_eq!(grid.seeds, [1, 2, 3]);
            assert_eq!(
                grid.methods[1],
                MethodConfig::Pmr(PmrConfig { alpha: 0.25 })
            );
            sweep.seeds.set("1, two".into());
            let error = sweep.to_sweep(RunConfig::default(), 0.25).unwrap_err();
            assert_eq!(error.field, "seeds");
        });
    }

    #[test]
    fn a_loaded_method_keeps_its_other_settings() {
        let loaded = MethodConfig::Mlb(MlbConfig {
            alpha: 0.8,
            beta: Some(2.0),
            ..MlbConfig::default()
        });
        let MethodConfig::Mlb(mlb) = method_with("mlb", 0.5, &loaded) else {
            panic!("still MLB");
        };
        assert_eq!((mlb.alpha, mlb.beta), (0.5, Some(2.0)));
        let MethodConfig::Ogm(ogm) = method_with("ogm_ge", 0.3, &loaded) else {
            panic!("OGM-GE");
        };
        assert!(ogm.generalization_enhancement && ogm.alpha == 0.3);
        for (value, _) in METHODS {
            assert_eq!(method_value(&method_with(value, 1.0, &loaded)), value);
        }
    }
}
