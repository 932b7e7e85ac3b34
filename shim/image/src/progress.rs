//! What a pull reports while it runs, and the terminal display of it: one line per blob (its
//! short digest, bytes done of its size, and its state) and a total line, redrawn in place at
//! most ten times a second. Off a terminal podshim stays quiet ([`Quiet`]).

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, Instant};

/// An event of a pull.
#[derive(Debug, Clone, Copy)]
pub enum PullEvent<'a> {
    /// The manifest is known: its blobs (config first, then layers), with their sizes and
    /// whether the store has them already.
    Resolved {
        reference: &'a str,
        digest: &'a str,
        blobs: &'a [(String, u64, bool)],
    },
    /// `done` bytes of blob `digest` have arrived.
    Progress { digest: &'a str, done: u64 },
    /// Blob `digest` is complete and verified.
    Fetched { digest: &'a str },
    /// Layer blob `digest` is being unpacked.
    Unpacking { digest: &'a str },
    /// The image is in the store.
    Done { reference: &'a str, digest: &'a str },
}

/// Receives a pull's events (`&self`: one pull fetches several blobs at once).
pub trait Progress {
    fn event(&self, event: PullEvent<'_>);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: PullEvent<'_>) {}
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Present,
    Downloading,
    Verified,
    Unpacking,
}

struct Line {
    digest: String,
    size: u64,
    done: u64,
    state: State,
}

struct Screen {
    lines: Vec<Line>,
    drawn: usize,
    last: Option<Instant>,
}

/// Draws the pull on a terminal (`out` is normally stderr).
pub struct Terminal<W: Write> {
    out: RefCell<W>,
    screen: RefCell<Screen>,
}

impl<W: Write> Terminal<W> {
    pub fn new(out: W) -> Self {
        Terminal {
            out: RefCell::new(out),
            screen: RefCell::new(Screen {
                lines: Vec::new(),
                drawn: 0,
                last: None,
            }),
        }
    }

    fn draw(&self, force: bool) {
        let mut screen = self.screen.borrow_mut();
        let now = Instant::now();
        if !force
            && screen
                .last
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        screen.last = Some(now);
        let mut text = String::new();
        if screen.drawn > 0 {
            // Back to the first line of the previous drawing.
            text.push_str(&format!("\x1b[{}F", screen.drawn));
        }
        let (mut done, mut size) = (0, 0);
        for l in &screen.lines {
            let state = match l.state {
                State::Waiting => "waiting",
                State::Present => "already present",
                State::Downloading => "downloading",
                State::Verified => "verified",
                State::Unpacking => "unpacking",
            };
            let got = if l.state == State::Present {
                l.size
            } else {
                l.done
            };
            done += got;
            size += l.size;
            let short: String = l
                .digest
                .trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
            text.push_str(&format!(
                "\x1b[2K{short}  {:>10} / {:<10} {state}\n",
                human(got),
                human(l.size)
            ));
        }
        text.push_str(&format!(
            "\x1b[2Ktotal         {:>10} / {:<10}\n",
            human(done),
            human(size)
        ));
        screen.drawn = screen.lines.len() + 1;
        let mut out = self.out.borrow_mut();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn set(&self, digest: &str, f: impl FnOnce(&mut Line)) {
        let mut screen = self.screen.borrow_mut();
        if let Some(l) = screen.lines.iter_mut().find(|l| l.digest == digest) {
            f(l);
        }
    }
}

impl<W: Write> Progress for Terminal<W> {
    fn event(&self, event: PullEvent<'_>) {
        match event {
            PullEvent::Resolved {
                reference,
                digest,
                blobs,
            } => {
                {
                    let mut out = self.out.borrow_mut();
                    let _ = writeln!(out, "pulling {reference} ({digest})");
                }
                let mut screen = self.screen.borrow_mut();
                screen.drawn = 0;
                screen.lines = blobs
                    .iter()
                    .map(|(digest, size, present)| Line {
                        digest: digest.clone(),
                        size: *size,
                        done: 0,
                        state: if *present {
                            State::Present
                        } else {
                            State::Waiting
                        },
                    })
                    .collect();
                drop(screen);
                self.draw(true);
            }
            PullEvent::Progress { digest, done } => {
                self.set(digest, |l| {
                    l.done = done;
                    l.state = State::Downloading;
                });
                self.draw(false);
            }
            PullEvent::Fetched { digest } => {
                self.set(digest, |l| {
                    l.done = l.size;
                    l.state = State::Verified;
                });
                self.draw(false);
            }
            PullEvent::Unpacking { digest } => {
                self.set(digest, |l| l.state = State::Unpacking);
                self.draw(true);
            }
            PullEvent::Done { .. } => {
                for l in self.screen.borrow_mut().lines.iter_mut() {
                    if l.state != State::Present {
                        l.done = l.size;
                        l.state = State::Verified;
                    }
                }
                self.draw(true);
            }
        }
    }
}

/// Bytes for people: `512B`, `1.5KiB`, `20.0MiB`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_draws_lines_and_total_in_place() {
        let term = Terminal::new(Vec::new());
        let blobs = vec![
            ("sha256:aaaaaaaaaaaaaaaa".to_string(), 100, true),
            ("sha256:bbbbbbbbbbbbbbbb".to_string(), 2048, false),
        ];
        term.event(PullEvent::Resolved {
            reference: "r",
            digest: "sha256:m",
            blobs: &blobs,
        });
        term.event(PullEvent::Fetched {
            digest: "sha256:bbbbbbbbbbbbbbbb",
        });
        term.event(PullEvent::Done {
            reference: "r",
            digest: "sha256:m",
        });
        let out = String::from_utf8(term.out.into_inner()).unwrap();
        assert!(out.starts_with("pulling r (sha256:m)\n"), "{out}");
        let last: Vec<String> = out
            .lines()
            .rev()
            .take(3)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(
            last[2].ends_with("aaaaaaaaaaaa 100B / 100B already present"),
            "{last:?}"
        );
        assert!(
            last[1].ends_with("bbbbbbbbbbbb 2.0KiB / 2.0KiB verified"),
            "{last:?}"
        );
        assert!(last[0].ends_with("total 2.1KiB / 2.1KiB"), "{last:?}");
        // Redrawn in place: the cursor goes back up over the 3 lines.
        assert!(out.contains("\x1b[3F"), "{out:?}");
    }
}
