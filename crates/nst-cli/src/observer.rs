//! What the command line does while a run goes: progress, the `--save-every` images, and
//! telling the signal handler once there is an image to save.

use crate::files::NumberedSaves;
use crate::progress::Progress;
use crate::signals;
use nst_transfer::{Evaluation, Observer, Snapshot};

/// The command line's observer of a run.
pub struct Watch<'a> {
    pub progress: &'a Progress,
    pub saves: Option<NumberedSaves>,
    /// The last failed save's warning: the same again (the folder is still gone) is not repeated.
    pub warned: Option<String>,
}

impl Observer for Watch<'_> {
    fn note(&mut self, message: &str) {
        self.progress.info(message);
    }

    fn evaluation(&mut self, evaluation: &Evaluation) {
        signals::optimizing();
        self.progress.evaluation(evaluation);
    }

    fn image(&mut self, snapshot: &Snapshot<'_>) {
        if let Some(saves) = &mut self.saves
            && let Err(e) = saves.after(snapshot)
        {
            // A failed intermediate save costs that picture, not the run.
            let warning = format!("warning: {e:#}; the run goes on");
            if self.warned.as_ref() != Some(&warning) {
                self.progress.info(&warning);
                self.warned = Some(warning);
            }
        }
    }
}
