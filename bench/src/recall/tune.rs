//! `cairn-bench recall --tune`: how the fusion's defaults were chosen, and
//! the floor's trade-off curve.

use cairn_memory::Fusion;

use super::{Mode, Report};

impl Report<'_> {
    /// Searches the fusion's weights on the tuning part: the best MRR (then
    /// recall@1), then the floors that keep the most answers while
    /// recalling nothing for questions without one.
    pub(super) fn tune(&self) {
        let mut best = (f64::MIN, self.fusion);
        for w in [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95] {
            for zero in [0.1f32, 0.15, 0.2, 0.25, 0.3] {
                for one in [0.5f32, 0.6, 0.7, 0.8] {
                    for min_lexical in [0.3, 0.5, 0.7, 0.9, 1.01] {
                        for gate in [0.2f32, 0.3, 0.4, 0.5] {
                            let fusion = Fusion {
                                semantic_weight: w,
                                cosine_zero: zero,
                                cosine_one: one,
                                min_lexical,
                                lexical_gate: gate,
                                ..self.fusion
                            };
                            let m = self.metrics(
                                &Report::modes(fusion, self.meaning_floor)[2],
                                Some(false),
                            );
                            let objective = m.mrr + 0.01 * m.at1;
                            if objective > best.0 {
                                best = (objective, fusion);
                            }
                        }
                    }
                }
            }
        }
        let mut fusion = best.1;
        let mut best_floors = (f64::MIN, fusion);
        for floor in (15..=35).map(|i| f64::from(i) * 0.02) {
            for standout_floor in [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 1.1] {
                for standout_margin in [0.05, 0.1, 0.15, 0.2, 0.25, 0.3] {
                    let f = Fusion {
                        floor,
                        standout_floor,
                        standout_margin,
                        ..fusion
                    };
                    let m = self.metrics(&Report::modes(f, self.meaning_floor)[2], Some(false));
                    if m.kept + m.no_answer > best_floors.0 + 1e-9 {
                        best_floors = (m.kept + m.no_answer, f);
                    }
                }
            }
        }
        fusion = best_floors.1;
        fusion.words_floor = self.best_floor(|f| Mode {
            fusion: Fusion {
                words_floor: f,
                ..fusion
            },
            ..Report::modes(fusion, self.meaning_floor)[0]
        });
        let meaning_floor = self.best_floor(|f| Mode {
            fusion: Fusion {
                floor: f,
                ..Report::modes(fusion, self.meaning_floor)[1].fusion
            },
            ..Report::modes(fusion, self.meaning_floor)[1]
        });
        println!("tuned on the tuning part: {fusion:?} (meaning only: floor {meaning_floor:.2})");
        for (part, held) in [("held", Some(true)), ("tune", Some(false))] {
            let modes = Report::modes(fusion, meaning_floor);
            for mode in &modes {
                let m = self.metrics(mode, held);
                println!(
                    "  {part:<6}{:<14}{:>10.3}{:>10.3}{:>8.3}{:>11.3}{:>13.3}",
                    mode.name, m.at1, m.at3, m.mrr, m.no_answer, m.kept
                );
            }
        }
    }

    /// The floor (0 to 0.8 in steps of 0.02) with the most answers recalled
    /// plus no-answer questions left empty on the tuning part (each a
    /// share, so both count alike), the lowest on a tie.
    fn best_floor(&self, mode_at: impl Fn(f64) -> Mode) -> f64 {
        let mut best = (f64::MIN, 0.0);
        for step in 0..=40 {
            let floor = f64::from(step) * 0.02;
            let m = self.metrics(&mode_at(floor), Some(false));
            if m.kept + m.no_answer > best.0 + 1e-9 {
                best = (m.kept + m.no_answer, floor);
            }
        }
        best.1
    }

    /// Answers recalled against no-answer questions left empty, on the held
    /// part, for hybrid at several floors.
    pub(super) fn print_floors(&self) {
        let line: Vec<String> = (5..=16)
            .map(|step| {
                let floor = f64::from(step) * 0.05;
                let mut mode = Report::modes(self.fusion, self.meaning_floor)[2];
                mode.fusion.floor = floor;
                let m = self.metrics(&mode, Some(true));
                format!("{floor:.2}: {:.2}/{:.2}", m.kept, m.no_answer)
            })
            .collect();
        println!(
            "  recall floor (held, hybrid) -> answer kept / no-answer: {}",
            line.join("  ")
        );
    }
}
