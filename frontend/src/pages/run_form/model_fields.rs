//! The form's fields for the encoder, the optimiser and the schedule: one select per part
//! for its kind, and the numbers that kind has, each bound to its path in the configuration
//! (`optimizer.beta1`), so that errors of the shared rules land on them by name.

use std::collections::BTreeMap;

use balancelab_shared::{FieldError, RunConfig};
use leptos::prelude::*;
use serde_json::{json, Value};

use super::sections::InputField;

/// A number of a part's kind: its label, its path in the configuration, and whether it is
/// a whole number.
type NumberField = (&'static str, &'static str, bool);

/// One kind of a part: its `kind` tag, its label, its settings when chosen anew, and its
/// numbers.
struct Kind {
    tag: &'static str,
    label: &'static str,
    fresh: fn() -> Value,
    numbers: &'static [NumberField],
}

/// A part of the configuration chosen by kind: encoder, optimiser or schedule.
pub(super) struct Part {
    /// Its path in the configuration.
    pub(super) path: &'static str,
    pub(super) label: &'static str,
    kinds: &'static [Kind],
}

const FEATURE_WIDTH: NumberField = ("Feature width", "model.feature_dim", true);
const WEIGHT_DECAY: NumberField = ("Weight decay", "optimizer.weight_decay", false);
const ADAM: &[NumberField] = &[
    WEIGHT_DECAY,
    ("beta1", "optimizer.beta1", false),
    ("beta2", "optimizer.beta2", false),
    ("eps", "optimizer.eps", false),
];

/// The parts, in the order the form shows them.
pub(super) const PARTS: [Part; 3] = [
    Part {
        path: "model.encoder",
        label: "Encoder",
        kinds: &[
            Kind {
                tag: "mlp",
                label: "MLP (feature vectors)",
                fresh: || json!({"kind": "mlp"}),
                numbers: &[
                    ("Hidden width", "model.encoder.hidden", true),
                    FEATURE_WIDTH,
                ],
            },
            Kind {
                tag: "cnn",
                label: "CNN (images, spectrograms)",
                fresh: || json!({"kind": "cnn"}),
                numbers: &[("Channels", "model.encoder.channels", true), FEATURE_WIDTH],
            },
            Kind {
                tag: "resnet18",
                label: "ResNet18 (the papers' backbone)",
                fresh: || json!({"kind": "resnet18"}),
                numbers: &[FEATURE_WIDTH],
            },
            Kind {
                tag: "transformer",
                label: "Transformer (tokens)",
                fresh: || json!({"kind": "transformer"}),
                numbers: &[
                    ("Layers", "model.encoder.layers", true),
                    ("Heads", "model.encoder.heads", true),
                    FEATURE_WIDTH,
                ],
            },
        ],
    },
    Part {
        path: "optimizer",
        label: "Optimiser",
        kinds: &[
            Kind {
                tag: "sgd",
                label: "SGD with momentum",
                fresh: || json!({"kind": "sgd"}),
                numbers: &[("Momentum", "optimizer.momentum", false), WEIGHT_DECAY],
            },
            Kind {
                tag: "adam",
                label: "Adam",
                fresh: || json!({"kind": "adam"}),
                numbers: ADAM,
            },
            Kind {
                tag: "adam_w",
                label: "AdamW",
                fresh: || json!({"kind": "adam_w"}),
                numbers: ADAM,
            },
        ],
    },
    Part {
        path: "schedule",
        label: "Learning-rate schedule",
        kinds: &[
            Kind {
                tag: "constant",
                label: "constant",
                fresh: || json!({"kind": "constant"}),
                numbers: &[],
            },
            Kind {
                tag: "step",
                label: "step decay (StepLR)",
                fresh: || json!({"kind": "step", "step_size": 30, "gamma": 0.1}),
                numbers: &[
                    ("Epochs per decay", "schedule.step_size", true),
                    ("Decay factor", "schedule.gamma", false),
                ],
            },
            Kind {
                tag: "cosine_warm_restarts",
                label: "cosine warm restarts",
                fresh: || {
                    json!({"kind": "cosine_warm_restarts", "start_epoch": 1, "t_0": 10,
                           "t_mult": 2, "eta_min": 0.0})
                },
                numbers: &[
                    ("From epoch", "schedule.start_epoch", true),
                    ("First cycle (epochs)", "schedule.t_0", true),
                    ("Cycle growth", "schedule.t_mult", true),
                    ("Lowest rate", "schedule.eta_min", false),
                ],
            },
        ],
    },
];

/// Whether an error of `field` lands on one of these fields.
pub(super) fn shows_part_field(field: &str) -> bool {
    (PARTS.iter().flat_map(|p| p.kinds.iter()))
        .flat_map(|k| k.numbers.iter())
        .any(|(_, path, _)| *path == field)
}

/// The value at `path` (dotted) of `value`, if there is one.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |node, key| node.get(key))
}

/// Sets the value at `path` (dotted, inside existing objects) of `value`.
fn set(value: &mut Value, path: &str, new: Value) {
    let mut node = value;
    for key in path.split('.') {
        node = match node {
            Value::Object(map) => map.entry(key).or_insert(Value::Null),
            _ => return,
        };
    }
    *node = new;
}

/// Every number of every kind, once each (kinds share some: weight decay, feature width).
fn number_paths() -> impl Iterator<Item = &'static str> {
    let all = (PARTS.iter().flat_map(|p| p.kinds.iter())).flat_map(|k| k.numbers.iter());
    let mut seen = Vec::new();
    all.filter_map(move |&(_, path, _)| {
        let new = !seen.contains(&path);
        seen.push(path);
        new.then_some(path)
    })
}

/// The form's state of the parts: each part's kind, and each number as typed.
#[derive(Clone, Copy)]
pub(super) struct PartFields {
    kinds: [RwSignal<String>; 3],
    numbers: StoredValue<BTreeMap<&'static str, RwSignal<String>>>,
}

impl PartFields {
    pub(super) fn new() -> Self {
        Self {
            kinds: std::array::from_fn(|_| RwSignal::new(String::new())),
            numbers: StoredValue::new(
                number_paths()
                    .map(|path| (path, RwSignal::new(String::new())))
                    .collect(),
            ),
        }
    }

    /// The text typed for the number at `path` (one of the parts' numbers).
    fn number(self, path: &str) -> RwSignal<String> {
        self.numbers.with_value(|numbers| numbers[path])
    }

    /// Shows `config`'s parts.
    pub(super) fn load(self, config: &RunConfig) {
        let json = serde_json::to_value(config).expect("a RunConfig serializes");
        for (part, kind) in PARTS.iter().zip(self.kinds) {
            let tag = at(&json, part.path)
                .and_then(|p| p.get("kind"))
                .and_then(Value::as_str);
            kind.set(tag.unwrap_or_default().to_owned());
        }
        for path in number_paths() {
            let text = at(&json, path).map(Value::to_string).unwrap_or_default();
            self.number(path).set(text);
        }
    }

    /// Part `index` becomes a fresh `tag`: `loaded`, under the form, takes its settings.
    fn choose(self, index: usize, tag: &str, loaded: RwSignal<RunConfig>) {
        let part = &PARTS[index];
        let Some(kind) = part.kinds.iter().find(|k| k.tag == tag) else {
            return;
        };
        let mut json =
            serde_json::to_value(loaded.get_untracked()).expect("a RunConfig serializes");
        set(&mut json, part.path, (kind.fresh)());
        // Each fresh kind is a valid part: the configuration reads back.
        let Ok(config) = serde_json::from_value::<RunConfig>(json.clone()) else {
            return;
        };
        self.kinds[index].set(tag.to_owned());
        // Only this part's numbers are shown afresh: what was typed in the others stays.
        for &(_, path, _) in kind.numbers {
            if let Some(value) = at(&json, path) {
                self.number(path).set(value.to_string());
            }
        }
        loaded.set(config);
    }

    /// `config` with the shown numbers in it; a number that does not read is told in
    /// `errors` and leaves the configuration's value.
    pub(super) fn apply(self, config: RunConfig, errors: &mut Vec<FieldError>) -> RunConfig {
        let mut json = serde_json::to_value(&config).expect("a RunConfig serializes");
        for (part, kind) in PARTS.iter().zip(self.kinds) {
            let Some(kind) = part.kinds.iter().find(|k| k.tag == kind.get()) else {
                continue;
            };
            for &(_, path, whole) in kind.numbers {
                let typed = self.number(path).get();
                let text = typed.trim();
                let parsed = match whole {
                    true => text.parse::<u32>().ok().map(Value::from),
                    false => (text.parse::<f64>().ok())
                        .filter(|v| v.is_finite())
                        .map(Value::from),
                };
                match parsed {
                    Some(value) => set(&mut json, path, value),
                    None => errors.push(FieldError::new(
                        path,
                        if whole {
                            "must be a whole number"
                        } else {
                            "must be a finite number"
                        },
                    )),
                }
            }
        }
        serde_json::from_value(json).unwrap_or(config)
    }
}

/// The three parts' kind selects and their numbers.
#[component]
pub(super) fn PartsFields(
    parts: PartFields,
    loaded: RwSignal<RunConfig>,
    errors: RwSignal<Vec<FieldError>>,
) -> impl IntoView {
    PARTS
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let kind = parts.kinds[index];
            let options = (part.kinds.iter())
                .map(|k| view! { <option value=k.tag>{k.label}</option> })
                .collect_view();
            let id = format!("field-{}", part.path.replace('.', "-"));
            let numbers = move || {
                let tag = kind.get();
                let chosen = part.kinds.iter().find(|k| k.tag == tag)?;
                Some(
                    (chosen.numbers.iter())
                        .map(|&(label, path, _)| {
                            view! { <InputField label field=path value=parts.number(path) errors /> }
                        })
                        .collect_view(),
                )
            };
            view! {
                <label class="field">
                    <span>{part.label}</span>
                    <select id=id prop:value=move || kind.get()
                        on:change=move |ev| parts.choose(index, &event_target_value(&ev), loaded)>
                        {options}
                    </select>
                </label>
                {numbers}
            }
        })
        .collect_view()
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::{EncoderConfig, OptimizerConfig, ScheduleConfig};

    #[test]
    fn every_fresh_kind_reads_back_into_a_valid_configuration() {
        for part in &PARTS {
            for kind in part.kinds {
                let mut json = serde_json::to_value(RunConfig::default()).unwrap();
                set(&mut json, part.path, (kind.fresh)());
                let config: RunConfig = serde_json::from_value(json)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", part.path, kind.tag));
                assert_eq!(config.validate(), Ok(()), "{} {}", part.path, kind.tag);
                let json = serde_json::to_value(&config).unwrap();
                for (_, path, _) in kind.numbers {
                    assert!(
                        at(&json, path).is_some_and(Value::is_number),
                        "{path} of {}",
                        kind.tag
                    );
                }
            }
        }
    }

    #[test]
    fn typed_numbers_land_at_their_paths_and_bad_ones_are_named() {
        let config = RunConfig {
            optimizer: OptimizerConfig::Adam(Default::default()),
            schedule: ScheduleConfig::Step {
                step_size: 30,
                gamma: 0.1,
            },
            ..RunConfig::default()
        };
        let parts = PartFields::new();
        parts.load(&config);
        parts.number("optimizer.beta2").set("0.98".into());
        parts.number("schedule.step_size").set("x".into());
        parts.number("model.encoder.hidden").set("128".into());
        let mut errors = Vec::new();
        let applied = parts.apply(config, &mut errors);
        let OptimizerConfig::Adam(adam) = &applied.optimizer else {
            panic!("still Adam");
        };
        assert_eq!(adam.beta2, 0.98);
        assert!(matches!(applied.model.encoder, EncoderConfig::Mlp(ref m) if m.hidden == 128));
        assert_eq!(
            applied.schedule,
            ScheduleConfig::Step {
                step_size: 30,
                gamma: 0.1
            }
        );
        assert_eq!(
            errors,
            [FieldError::new(
                "schedule.step_size",
                "must be a whole number"
            )]
        );
        assert!(shows_part_field("schedule.step_size") && !shows_part_field("schedule"));
    }

    #[test]
    fn choosing_a_kind_keeps_what_was_typed_in_the_other_parts() {
        let loaded = RwSignal::new(RunConfig::default());
        let parts = PartFields::new();
        parts.load(&loaded.get_untracked());
        parts.number("optimizer.momentum").set("0.5".into());
        parts.choose(2, "step", loaded);
        assert_eq!(parts.number("optimizer.momentum").get_untracked(), "0.5");
        assert_eq!(parts.number("schedule.step_size").get_untracked(), "30");
        assert_eq!(parts.kinds[2].get_untracked(), "step");
        let expected = ScheduleConfig::Step {
            step_size: 30,
            gamma: 0.1,
        };
        assert_eq!(loaded.get_untracked().schedule, expected);
    }
}
