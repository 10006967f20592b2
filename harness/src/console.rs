//! A run's progress on stderr. On a terminal: a bar with the cells done out
//! of the total, the time left, and the cells running now, with every other
//! line printed above it. Otherwise (CI logs, pipes): one plain line per
//! finished cell, as before.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use vpnlab::batch::{self, Event};

/// Where the batch's events go.
pub struct Console {
    /// The bar, on a terminal, once the first cell starts.
    bar: Mutex<Option<ProgressBar>>,
    /// Whether stderr is a terminal.
    tty: bool,
    /// The cells running now, in start order.
    running: Mutex<Vec<String>>,
}

impl Console {
    /// Progress on this process's stderr.
    pub fn on_stderr() -> Console {
        Console {
            bar: Mutex::new(None),
            // A guest's console is a terminal, but its lines go to the
            // host's console one by one: no bar there.
            tty: std::io::stderr().is_terminal() && batch::vm::guest().is_none(),
            running: Mutex::new(Vec::new()),
        }
    }

    /// Take the bar off the terminal (the table follows).
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("bar").take() {
            bar.finish_and_clear();
        }
    }

    /// A line above the bar, or on stderr.
    fn line(&self, text: String) {
        match self.bar.lock().expect("bar").as_ref() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// The bar for `total` cells, made on first use (terminals only).
    fn bar(&self, total: usize) -> Option<ProgressBar> {
        if !self.tty {
            return None;
        }
        let mut bar = self.bar.lock().expect("bar");
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} cells, {elapsed} so far, ~{eta} left  {wide_msg}",
            )
            .expect("a valid template");
            b.set_style(style);
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Some(b.clone())
    }

    /// Show the cells running now on the bar.
    fn show_running(&self, bar: &ProgressBar) {
        let running = self.running.lock().expect("running");
        bar.set_message(format!("running: {}", running.join(", ")));
    }
}

impl batch::Progress for Console {
    fn event(&self, e: Event<'_>) {
        match e {
            Event::CellStarted { total, cell, .. } => {
                if let Some(bar) = self.bar(total) {
                    self.running.lock().expect("running").push(cell.to_string());
                    self.show_running(&bar);
                }
            }
            Event::CellDone {
                index,
                total,
                report,
            } => {
                let cell = &report.outcome.cell;
                self.line(format!(
                    "[{index}/{total}] {:<11} {cell} ({:.2}s)",
                    report.outcome.verdict.label(),
                    report.elapsed_ms as f64 / 1000.0
                ));
                if let Some(bar) = self.bar(total) {
                    self.running.lock().expect("running").retain(|c| c != cell);
                    bar.inc(1);
                    self.show_running(&bar);
                }
            }
            Event::UmlBuilding { kernel } => self.line(format!(
                "building the UML kernel {} (once; 6-8 minutes on 2 cores)...",
                kernel.display()
            )),
            Event::VmBooting {
                kernel,
                accel,
                why,
                instances,
                cells,
            } => self.line(format!(
                "booting {} under {} ({why}){} for {cells} cells...",
                kernel.display(),
                accel.describe(),
                if instances > 1 {
                    format!(", {instances} instances")
                } else {
                    String::new()
                }
            )),
            Event::VmConsole(line) => self.line(format!("  vm| {line}")),
            Event::Holding(h) => {
                // The held cell waits for Ctrl-C: no bar under its text.
                self.finish();
                eprintln!(
                    "\n--keep: cell {} failed; its topology stays up until Ctrl-C.",
                    h.cell
                );
                for m in &h.mismatches {
                    eprintln!("  - {m}");
                }
                if let Some(r) = &h.reason {
                    eprintln!("  {r}");
                }
                for d in &h.diagnosis {
                    eprintln!("  diagnosis: {d}");
                }
                for (name, cmd) in &h.enter {
                    eprintln!("  {name:<10} {cmd}");
                }
                eprintln!("  daemon files: {}", h.files);
            }
            Event::Releasing(cell) => self.line(format!("tearing down {cell}")),
            Event::Warning(w) => self.line(format!("vpnlab: {w}")),
        }
    }
}
