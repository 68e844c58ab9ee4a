//! SIGINT (Ctrl-C), SIGTERM and SIGHUP. The first stops the optimization at once (the
//! evaluation under way is dropped) and the best image so far is saved; a second quits at
//! once, abandoning any write under way (its temporary file removed, the destination left as
//! it was). Before the first evaluation ends there is nothing to save, and the first signal
//! quits.

use crate::files::WRITES;
use crate::progress::say;
use anyhow::Result;
use nst_transfer::Cancel;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

/// The run's cancel token, tripped by the first signal.
pub static CANCEL: Cancel = Cancel::new();

/// Where the process is, for what a signal means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reading inputs, loading the network, computing targets, the first evaluation: nothing
    /// to save yet.
    Setup,
    /// Optimizing (and writing `--save-every` images).
    Optimizing,
    /// Writing the output image.
    Saving,
    /// The output image is written (the report may be under way).
    Saved,
}

/// The current [`Phase`].
static PHASE: AtomicU8 = AtomicU8::new(Phase::Setup as u8);

/// The first signal received, or 0.
static FIRST: AtomicI32 = AtomicI32::new(0);

/// Marks that the optimization has begun (at its first evaluation; later calls change nothing).
pub fn optimizing() {
    let _ = PHASE.compare_exchange(Phase::Setup as u8, Phase::Optimizing as u8, Ordering::SeqCst, Ordering::SeqCst);
}

/// Marks the phases after the optimization: [`Phase::Saving`] or [`Phase::Saved`].
pub fn set_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::SeqCst);
}

fn phase() -> Phase {
    match PHASE.load(Ordering::SeqCst) {
        0 => Phase::Setup,
        1 => Phase::Optimizing,
        2 => Phase::Saving,
        _ => Phase::Saved,
    }
}

/// The first signal received, if any.
pub fn received() -> Option<i32> {
    Some(FIRST.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// The exit status of a process that stops for `signal`, as shells report it.
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// Starts the thread that answers signals.
pub fn install() -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let earlier = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).err();
            let phase = phase();
            match action(phase, earlier.is_none()) {
                Action::Stop => {
                    CANCEL.cancel();
                    say(&format!("nst: {}", message(signal, earlier, phase, None)));
                }
                Action::Note => say(&format!("nst: {}", message(signal, earlier, phase, None))),
                Action::Exit => {
                    let abandoned = WRITES.abandon();
                    say(&format!("nst: {}", message(signal, earlier, phase, abandoned.as_deref())));
                    // Straight out: no exit handlers racing the threads still running.
                    // SAFETY: _exit ends the process; nothing after it runs.
                    unsafe { libc::_exit(exit_code(signal)) }
                }
            }
        }
    });
    Ok(())
}

/// What a signal does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Stop the optimization and save.
    Stop,
    /// Nothing: the run is already finishing.
    Note,
    /// Quit now.
    Exit,
}

fn action(phase: Phase, first: bool) -> Action {
    match (phase, first) {
        (Phase::Optimizing, true) => Action::Stop,
        (Phase::Saving, true) => Action::Note,
        _ => Action::Exit,
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "interrupted (Ctrl-C)",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// What nst says on `signal` in `phase`, after an `earlier` signal if any; `abandoned` is the
/// file a quitting write left unwritten.
fn message(signal: i32, earlier: Option<i32>, phase: Phase, abandoned: Option<&Path>) -> String {
    let sig = name(signal);
    let again = match earlier {
        None => "",
        Some(s) if s == signal => " again",
        Some(_) => " (a second signal)",
    };
    match (phase, action(phase, earlier.is_none())) {
        (Phase::Setup, _) => format!("{sig}{again} before the first evaluation ended: nothing to save, exiting"),
        (_, Action::Stop) => {
            let how = if signal == SIGINT { "Ctrl-C again" } else { "send it again" };
            format!("{sig}: stopping to save the best image so far ({how} to quit without saving)")
        }
        (_, Action::Note) => format!("{sig}: the result is being saved; exiting when it is written"),
        (Phase::Optimizing, _) => match abandoned {
            Some(p) => format!("{sig}{again}: exiting without saving ({} not written)", p.display()),
            None => format!("{sig}{again}: exiting without saving"),
        },
        (Phase::Saving, _) => match abandoned {
            Some(p) => format!("{sig}{again} during the save: {} not written, exiting", p.display()),
            None => format!("{sig}{again}: exiting"),
        },
        (Phase::Saved, _) => match abandoned {
            Some(p) => format!("{sig}{again}: the image is saved, {} not written; exiting", p.display()),
            None => format!("{sig}{again}: the image is saved; exiting"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_saves_a_second_quits() {
        assert_eq!(action(Phase::Setup, true), Action::Exit);
        assert_eq!(action(Phase::Optimizing, true), Action::Stop);
        assert_eq!(action(Phase::Optimizing, false), Action::Exit);
        assert_eq!(action(Phase::Saving, true), Action::Note);
        assert_eq!(action(Phase::Saving, false), Action::Exit);
        assert_eq!(action(Phase::Saved, true), Action::Exit);
        assert_eq!(exit_code(SIGINT), 130);
        assert_eq!(exit_code(SIGTERM), 143);
    }

    #[test]
    fn messages_say_what_happened() {
        let out = Path::new("out.png");
        let ctrl_c = Some(SIGINT);
        assert_eq!(
            message(SIGTERM, None, Phase::Optimizing, None),
            "SIGTERM: stopping to save the best image so far (send it again to quit without saving)"
        );
        assert!(message(SIGINT, None, Phase::Optimizing, None).ends_with("(Ctrl-C again to quit without saving)"));
        assert_eq!(
            message(SIGINT, ctrl_c, Phase::Optimizing, None),
            "interrupted (Ctrl-C) again: exiting without saving"
        );
        assert_eq!(
            message(SIGTERM, ctrl_c, Phase::Optimizing, None),
            "SIGTERM (a second signal): exiting without saving"
        );
        assert_eq!(
            message(SIGINT, ctrl_c, Phase::Saving, Some(out)),
            "interrupted (Ctrl-C) again during the save: out.png not written, exiting"
        );
        // After the save, no "without saving".
        assert_eq!(
            message(SIGINT, ctrl_c, Phase::Saved, None),
            "interrupted (Ctrl-C) again: the image is saved; exiting"
        );
        assert_eq!(
            message(SIGHUP, None, Phase::Saved, Some(Path::new("r.json"))),
            "SIGHUP: the image is saved, r.json not written; exiting"
        );
        assert_eq!(
            message(SIGHUP, None, Phase::Setup, None),
            "SIGHUP before the first evaluation ended: nothing to save, exiting"
        );
    }
}
