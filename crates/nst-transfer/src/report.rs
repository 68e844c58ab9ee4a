//! What a run reports: every evaluation's loss, each stage's plan and time, the timings.

use crate::plan::Plan;
use crate::words::count;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// One evaluation of the loss and its gradient.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Its number, from 1, over all stages.
    pub evaluation: usize,
    /// The loss.
    #[serde(serialize_with = "loss_value")]
    pub loss: f32,
    /// Its terms by name (`content_relu4_2`, `style_relu1_1`, `tv`).
    #[serde(serialize_with = "loss_terms")]
    pub terms: BTreeMap<String, f32>,
    /// Seconds since the optimization began.
    pub elapsed_s: f64,
}

/// One stage of the run: its size, how it ran, and its time.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    /// The image's (width, height).
    pub size: [usize; 2],
    /// Evaluations spent.
    pub evaluations: usize,
    /// Solver iterations.
    pub iterations: usize,
    /// Whole or tiled, and the history.
    #[serde(flatten)]
    pub plan: Plan,
    /// Seconds computing the targets.
    pub targets_s: f64,
    /// Seconds optimizing.
    pub optimize_s: f64,
    /// Milliseconds per evaluation.
    pub ms_per_evaluation: f64,
}

/// Where the time went, in seconds.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Timings {
    /// Reading and preparing the images.
    pub setup_s: f64,
    /// Computing targets (and swapping patches).
    pub targets_s: f64,
    /// Optimizing.
    pub optimize_s: f64,
    /// All of the run.
    pub total_s: f64,
    /// Milliseconds per evaluation.
    pub ms_per_evaluation: f64,
}

/// The report of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The method: `gatys`, `swap` or `analogy`.
    pub method: &'static str,
    /// Where the network ran: `cpu` or `cuda`.
    pub device: &'static str,
    /// The arithmetic it ran in: `fp32`, `bf16` or `fp16`.
    pub precision: &'static str,
    /// The output's (width, height).
    pub output_size: [usize; 2],
    /// The style images' (width, height) at the output size.
    pub style_sizes: Vec<[usize; 2]>,
    /// Where the time went.
    pub timings: Timings,
    /// Each stage.
    pub stages: Vec<StageReport>,
    /// Why the last stage ended.
    pub termination: String,
    /// Whether it was cancelled.
    pub interrupted: bool,
    /// The loss where the last stage started (for analogy, its last feature deconvolution's).
    #[serde(serialize_with = "loss_value")]
    pub initial_loss: f32,
    /// The best loss of the last stage.
    #[serde(serialize_with = "loss_value")]
    pub final_loss: f32,
    /// Every evaluation.
    pub evaluations: Vec<Evaluation>,
}

impl Report {
    /// `evaluation budget spent after 100 evaluations: loss 1.2e9 → 3.4e7` (or `interrupted after …`).
    /// For analogy, whose losses are its deconvolutions': `done after 800 evaluations over 5 levels`.
    pub fn summary(&self) -> String {
        if self.method == "analogy" {
            let done = if self.interrupted { "interrupted" } else { "done" };
            return format!(
                "{done} after {} over {}",
                count(self.evaluations.len(), "evaluation"),
                count(self.stages.len(), "level")
            );
        }
        // Each stage (or swap round) has targets of its own, so its losses compare with its
        // own only: the summary's are the last one's that evaluated (a stop may come in a
        // stage's first evaluation).
        let spent = self.stages.iter().rposition(|s| s.evaluations > 0).unwrap_or(0);
        let kind = if self.method == "swap" { "round" } else { "stage" };
        let whose = match self.stages.len() {
            0 | 1 => String::new(),
            n if spent + 1 == n => format!("the last {kind}'s "),
            _ => format!("{kind} {}'s ", spent + 1),
        };
        format!(
            "{} after {}: {whose}loss {:.4e} → {:.4e}",
            if self.interrupted { "interrupted" } else { &self.termination },
            count(self.evaluations.len(), "evaluation"),
            self.initial_loss,
            self.final_loss
        )
    }
}

/// A loss in the report: a number, or `"inf"`, `"-inf"`, `"nan"` (JSON has no such numbers).
fn loss_value<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() { s.serialize_f32(*v) } else { s.serialize_str(&v.to_string().to_lowercase()) }
}

fn loss_terms<S: Serializer>(terms: &BTreeMap<String, f32>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Loss(#[serde(serialize_with = "loss_value")] f32);
    s.collect_map(terms.iter().map(|(k, &v)| (k, Loss(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_losses_are_named() {
        let e = Evaluation {
            evaluation: 2,
            loss: f32::INFINITY,
            terms: [("style_relu1_1".to_string(), f32::NAN), ("tv".to_string(), 0.5)].into(),
            elapsed_s: 1.0,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["loss"], "inf");
        assert_eq!(json["terms"]["style_relu1_1"], "nan");
        assert_eq!(json["terms"]["tv"], 0.5);
    }

    #[test]
    fn the_summary_names_the_stage_whose_losses_it_gives() {
        let plan = Plan { tile: None, tiles: 1, history: 10, bytes: 0, gpu_bytes: None, pairs_on_gpu: false };
        let stage = |evaluations| StageReport {
            size: [64, 64],
            evaluations,
            iterations: evaluations,
            plan: plan.clone(),
            targets_s: 0.0,
            optimize_s: 0.0,
            ms_per_evaluation: 0.0,
        };
        let mut report = Report {
            method: "gatys",
            device: "cpu",
            precision: "fp32",
            output_size: [64, 64],
            style_sizes: vec![[64, 64]],
            timings: Timings::default(),
            stages: vec![stage(3), stage(2)],
            termination: "evaluation budget spent".into(),
            interrupted: false,
            initial_loss: 2e4,
            final_loss: 1e4,
            evaluations: Vec::new(),
        };
        assert!(report.summary().contains(": the last stage's loss 2.0000e4 → 1.0000e4"), "{}", report.summary());
        // Stopped in the third stage's first evaluation: the losses are the second's.
        report.stages.push(stage(0));
        report.interrupted = true;
        assert!(
            report.summary().starts_with("interrupted after 0 evaluations: stage 2's loss"),
            "{}",
            report.summary()
        );
        report.method = "swap";
        assert!(report.summary().contains(": round 2's loss"), "{}", report.summary());
    }
}
