//! What a headless run shows and keeps while it trains: every event appended to the run
//! folder's metrics.jsonl, a progress bar on the terminal, a line per epoch, and the run's
//! outcome.

use std::fs::File;
use std::io::{BufWriter, Write};

use balancelab::engine::TrainingEvent;
use balancelab_shared::EpochMetrics;
use indicatif::{ProgressBar, ProgressStyle};

/// Subscribes to a run's events (see [`ProgressReporter::on_event`]).
pub struct ProgressReporter {
    metrics: BufWriter<File>,
    /// The first failure to write metrics.jsonl; later events are not written.
    written: anyhow::Result<()>,
    bar: ProgressBar,
    /// Modality names, for the epoch lines.
    names: Vec<String>,
    epochs: Vec<EpochMetrics>,
    outcome: Option<TrainingEvent>,
}

impl ProgressReporter {
    /// A reporter writing events to `metrics` and naming modalities `names`.
    pub fn new(metrics: File, names: Vec<String>) -> Self {
        // Hidden when stderr is not a terminal.
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{bar:30} epoch {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("a valid template"),
        );
        Self {
            metrics: BufWriter::new(metrics),
            written: Ok(()),
            bar,
            names,
            epochs: Vec::new(),
            outcome: None,
        }
    }

    /// Records and shows one event.
    pub fn on_event(&mut self, event: TrainingEvent) {
        if self.written.is_ok() {
            self.written = serde_json::to_writer(&mut self.metrics, &event)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(self.metrics.write_all(b"\n")?));
        }
        match &event {
            TrainingEvent::Started {
                epochs,
                first_epoch,
                steps_per_epoch,
            } => {
                (self.bar).set_length(u64::from(epochs + 1 - first_epoch) * steps_per_epoch);
                if *first_epoch > 1 {
                    println!("resuming at epoch {first_epoch}");
                }
            }
            TrainingEvent::Step(step) => {
                self.bar.inc(1);
                (self.bar).set_message(format!("{} loss {:.4}", step.epoch, step.loss));
            }
            TrainingEvent::Epoch(m) => {
                let line = self.epoch_line(m);
                // println on the bar does nothing when it is hidden; suspend prints anyway.
                self.bar.suspend(|| println!("{line}"));
                self.epochs.push((*m).clone());
            }
            TrainingEvent::Finished(_)
            | TrainingEvent::Cancelled
            | TrainingEvent::Failed { .. } => {
                self.outcome = Some(event);
            }
        }
    }

    /// An epoch's loss and accuracies, on validation if there is a validation split.
    fn epoch_line(&self, m: &EpochMetrics) -> String {
        let scores = m.validation.as_ref().unwrap_or(&m.test);
        let split = if m.validation.is_some() {
            "val"
        } else {
            "test"
        };
        let per_modality: Vec<String> = (self.names.iter().enumerate())
            .map(|(i, name)| {
                format!(
                    "[{name}] k {:.3} acc {:.3}",
                    m.coefficients[i], scores.unimodal[i]
                )
            })
            .collect();
        format!(
            "epoch {:>4}  loss {:.4}  {split} acc {:.3}  {}",
            m.epoch,
            m.train_loss,
            scores.fused,
            per_modality.join("  ")
        )
    }

    /// Clears the bar and flushes metrics.jsonl; the run's epochs and its terminal event.
    pub fn finish(mut self) -> anyhow::Result<(Vec<EpochMetrics>, Option<TrainingEvent>)> {
        self.bar.finish_and_clear();
        self.written?;
        self.metrics.flush()?;
        Ok((self.epochs, self.outcome))
    }
}
