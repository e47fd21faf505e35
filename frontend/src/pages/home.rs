//! The start page: a form that starts a run, and the list of runs.

use balancelab_shared::{
    AgmConfig, AvDigitsConfig, AvDigitsSplit, AveConfig, ComputeDevice, CremaDConfig, CremaDSplit,
    DatasetConfig, DatasetInfo, FieldError, MethodConfig, MfeatConfig, MfeatView, MlbConfig,
    MmCosineConfig, MslrConfig, MultiLossConfig, OgmConfig, PmrConfig, RunConfig, SplitConfig,
    SyntheticConfig, Ucf101Config, Ucf101Modalities,
};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::{self, ApiFailure};

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"New run"</h1>
            <p class="hint">
                "Two modalities, one encoder and one unimodal head each, and a late-fusion head. "
                "MLB multiplies each modality's gradients by k = 1 + tanh(alpha (r - 1)), "
                "r = the other head's confidence over its own, so the weaker modality speeds up."
            </p>
            <RunForm />
        </section>
        <section class="card">
            <h2>"Runs"</h2>
            <super::runs::RunList />
        </section>
    }
}

/// The form's inputs, kept as typed text until submitted.
#[derive(Clone, Copy)]
struct FormFields {
    /// One of [`DATASET_CHOICES`]' values.
    dataset: RwSignal<String>,
    method: RwSignal<String>,
    alpha: RwSignal<String>,
    epochs: RwSignal<String>,
    noise_strong: RwSignal<String>,
    noise_weak: RwSignal<String>,
    learning_rate: RwSignal<String>,
    seed: RwSignal<String>,
    device: RwSignal<String>,
}

impl FormFields {
    fn new(defaults: &RunConfig) -> Self {
        let synthetic = SyntheticConfig::default();
        let alpha = match &defaults.method {
            MethodConfig::Mlb(mlb) => mlb.alpha,
            MethodConfig::Ogm(ogm) => ogm.alpha,
            MethodConfig::Agm(agm) => agm.alpha,
            MethodConfig::Pmr(pmr) => pmr.alpha,
            _ => MlbConfig::default().alpha,
        };
        Self {
            dataset: RwSignal::new(DATASET_CHOICES[0].0.to_owned()),
            method: RwSignal::new(defaults.method.name().to_owned()),
            alpha: RwSignal::new(alpha.to_string()),
            epochs: RwSignal::new(defaults.epochs.to_string()),
            noise_strong: RwSignal::new(synthetic.noise[0].to_string()),
            noise_weak: RwSignal::new(synthetic.noise[1].to_string()),
            learning_rate: RwSignal::new(defaults.learning_rate.to_string()),
            seed: RwSignal::new(defaults.seed.to_string()),
            device: RwSignal::new(defaults.device.to_string()),
        }
    }

    /// The configuration the form describes, or every field that is wrong.
    fn to_config(self) -> Result<RunConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut number = |field: &str, text: String| match text.trim().parse::<f64>() {
            Ok(v) => v,
            Err(_) => {
                errors.push(FieldError::new(field, "must be a number"));
                f64::NAN
            }
        };
        let alpha = number("method.alpha", self.alpha.get());
        let noise = vec![
            number("dataset.noise[0]", self.noise_strong.get()),
            number("dataset.noise[1]", self.noise_weak.get()),
        ];
        let learning_rate = number("learning_rate", self.learning_rate.get());
        let epochs = self.epochs.get().trim().parse::<u32>();
        let seed = self.seed.get().trim().parse::<u64>();
        if epochs.is_err() {
            errors.push(FieldError::new("epochs", "must be a whole number"));
        }
        if seed.is_err() {
            errors.push(FieldError::new("seed", "must be a whole number"));
        }
        let device = self.device.get().parse::<ComputeDevice>();
        if let Err(message) = &device {
            errors.push(FieldError::new("device", message.clone()));
        }
        let ogm = |generalization_enhancement| {
            MethodConfig::Ogm(OgmConfig {
                alpha,
                generalization_enhancement,
                ..OgmConfig::default()
            })
        };
        let method = match self.method.get().as_str() {
            "joint" => MethodConfig::Joint,
            "multi_loss" => MethodConfig::MultiLoss(MultiLossConfig::default()),
            "ogm_ge" => ogm(true),
            "ogm" => ogm(false),
            "agm" => MethodConfig::Agm(AgmConfig {
                alpha,
                ..AgmConfig::default()
            }),
            "mslr" => MethodConfig::Mslr(MslrConfig::default()),
            "mm_cosine" => MethodConfig::MmCosine(MmCosineConfig::default()),
            "pmr" => MethodConfig::Pmr(PmrConfig { alpha }),
            _ => MethodConfig::Mlb(MlbConfig {
                alpha,
                ..MlbConfig::default()
            }),
        };
        if !uses_alpha(&self.method.get()) {
            errors.retain(|e| e.field != "method.alpha");
        }
        let dataset = dataset_choice(&self.dataset.get(), noise);
        if !matches!(dataset, DatasetConfig::Synthetic(_)) {
            errors.retain(|e| !e.field.starts_with("dataset.noise"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let config = RunConfig {
            method,
            epochs: epochs.unwrap_or_default(),
            seed: seed.unwrap_or_default(),
            device: device.unwrap_or_default(),
            learning_rate,
            dataset,
            ..RunConfig::default()
        };
        config.validate().map(|()| config)
    }
}

/// The form's dataset options: (value, label, catalog kind).
const DATASET_CHOICES: [(&str, &str, &str); 12] = [
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

fn dataset_choice(value: &str, noise: Vec<f64>) -> DatasetConfig {
    let mfeat = |views: [MfeatView; 2]| {
        DatasetConfig::Mfeat(MfeatConfig {
            views: views.to_vec(),
            ..MfeatConfig::default()
        })
    };
    match value {
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
        _ => DatasetConfig::Synthetic(SyntheticConfig {
            noise,
            ..SyntheticConfig::default()
        }),
    }
}

/// Whether the method chosen in the form (by its option value) has an alpha.
fn uses_alpha(method: &str) -> bool {
    matches!(method, "mlb" | "ogm_ge" | "ogm" | "agm" | "pmr")
}

#[component]
fn RunForm() -> impl IntoView {
    let fields = FormFields::new(&RunConfig::default());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();

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
        errors.set(Vec::new());
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::create_run(&config).await {
                Ok(run) => navigate(&format!("/runs/{}", run.id), Default::default()),
                Err(ApiFailure(body)) => {
                    errors.set(body.fields);
                    message.set(Some(body.message));
                }
            }
            busy.set(false);
        });
    };

    let has_alpha = move || uses_alpha(&fields.method.get());
    let is_synthetic = move || fields.dataset.get() == "synthetic";
    let catalog = LocalResource::new(api::list_datasets);
    let info = move |kind: &str| -> Option<DatasetInfo> {
        catalog
            .get()
            .and_then(Result::ok)
            .and_then(|all| all.into_iter().find(|d| d.kind == kind))
    };
    let chosen_kind = move || {
        let value = fields.dataset.get();
        DATASET_CHOICES
            .iter()
            .find(|c| c.0 == value)
            .map_or("synthetic", |c| c.2)
    };
    let dataset_options = move || {
        DATASET_CHOICES
            .iter()
            .map(|&(value, label, kind)| {
                let available = info(kind).is_some_and(|d| d.available);
                let label = if available {
                    label.to_owned()
                } else {
                    format!("{label} (not found)")
                };
                view! { <option value=value disabled=!available>{label}</option> }
            })
            .collect_view()
    };
    let attribution = move || {
        info(chosen_kind())
            .map(|d| format!("{}. Source: {}. License: {}.", d.name, d.source, d.license))
    };
    view! {
        <form class="run-form" on:submit=submit novalidate>
            <label class="field wide">
                <span>"Dataset"</span>
                <select
                    id="field-dataset"
                    prop:value=move || fields.dataset.get()
                    on:change=move |ev| fields.dataset.set(event_target_value(&ev))
                >
                    {dataset_options}
                </select>
                <small class="hint">{attribution}</small>
            </label>
            <label class="field">
                <span>"Method"</span>
                <select
                    id="field-method"
                    prop:value=move || fields.method.get()
                    on:change=move |ev| fields.method.set(event_target_value(&ev))
                >
                    <option value="joint">"Joint training (fused loss only)"</option>
                    <option value="multi_loss">"Multi-loss (fused + unimodal heads)"</option>
                    <option value="mlb">"MLB (multi-loss + gradient balancing)"</option>
                    <option value="ogm_ge">"OGM-GE (on-the-fly modulation + noise)"</option>
                    <option value="ogm">"OGM (on-the-fly modulation)"</option>
                    <option value="agm">"AGM (adaptive gradient modulation)"</option>
                    <option value="mslr">"MSLR (modality-specific learning rates)"</option>
                    <option value="mm_cosine">"MMCosine (cosine fusion)"</option>
                    <option value="pmr">"PMR (prototypical rebalance)"</option>
                </select>
            </label>
            <Show when=has_alpha>
                <InputField label="alpha" field="method.alpha" value=fields.alpha errors step="0.1" />
            </Show>
            <InputField label="Epochs" field="epochs" value=fields.epochs errors step="1" />
            <Show when=is_synthetic>
                <InputField label="Noise, modality 0" field="dataset.noise[0]" value=fields.noise_strong errors step="0.1" />
                <InputField label="Noise, modality 1" field="dataset.noise[1]" value=fields.noise_weak errors step="0.1" />
            </Show>
            <InputField label="Learning rate (SGD, momentum 0.9)" field="learning_rate" value=fields.learning_rate errors step="any" />
            <InputField label="Seed" field="seed" value=fields.seed errors step="1" />
            <InputField label="Device (cpu, cuda:N)" field="device" value=fields.device errors kind="text" />
            <div class="actions">
                <button type="submit" id="start-run" disabled=move || busy.get()>"Start run"</button>
                {move || message.get().map(|m| view! { <p class="form-message" role="alert">{m}</p> })}
            </div>
        </form>
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
            all.iter()
                .filter(|e| e.field == field)
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    let id = format!("field-{}", field.replace(['.', '[', ']'], "-"));
    view! {
        <label class="field" class:invalid=move || !error().is_empty()>
            <span>{label}</span>
            <input
                id=id
                type=kind
                step=step
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
            <Show when=move || !error().is_empty()>
                <small class="field-error" data-field=field>{error}</small>
            </Show>
        </label>
    }
}
