//! Results tables as text: CSV with every number, Markdown and LaTeX as papers print them.
//! The API exports them (`/results?format=`) and `balancelab sweep` writes them to files.

use std::fmt::Write as _;

use balancelab_shared::{EpochChoice, ResultsTable, Summary};

/// Every number at full precision: one row per group, mean, std and n per metric.
pub fn to_csv(table: &ResultsTable) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = table.group_by.clone();
    header.push("runs".into());
    for metric in &table.metrics {
        header.extend(["mean", "std", "n"].map(|s| format!("{metric} {s}")));
    }
    // Writing to memory cannot fail.
    writer.write_record(&header).expect("in-memory CSV");
    for row in &table.rows {
        let mut record = row.group.clone();
        record.push(row.run_ids.len().to_string());
        for summary in &row.metrics {
            match summary {
                Some(s) => record.extend([s.mean.to_string(), s.std.to_string(), s.n.to_string()]),
                None => record.extend(["", "", "0"].map(String::from)),
            }
        }
        writer.write_record(&record).expect("in-memory CSV");
    }
    String::from_utf8(writer.into_inner().expect("in-memory CSV")).expect("CSV of UTF-8 text")
}

/// Which epoch of each run the table reads, said under it (the CSV keeps to its columns; the
/// JSON table names it in `epoch`).
fn epoch_caption(epoch: EpochChoice) -> &'static str {
    match epoch {
        EpochChoice::BestValidation => {
            "Each run at its best validation epoch (highest fused validation accuracy, then \
             lowest validation loss; the last epoch for runs without a validation split)."
        }
        EpochChoice::Last => "Each run at its last epoch.",
    }
}

/// Mean +- std with three decimals, as papers print accuracies.
fn cell(summary: &Option<Summary>, plus_minus: &str) -> String {
    match summary {
        Some(s) if s.n > 1 => format!("{:.3}{plus_minus}{:.3}", s.mean, s.std),
        Some(s) => format!("{:.3}", s.mean),
        None => "-".into(),
    }
}

/// One row per group, each metric as mean ± std.
pub fn to_markdown(table: &ResultsTable) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut header: Vec<String> = table.group_by.iter().map(|s| escape(s)).collect();
    header.push("runs".into());
    header.extend(table.metrics.iter().map(|s| escape(s)));
    let mut out = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in &table.rows {
        let mut cells: Vec<String> = row.group.iter().map(|s| escape(s)).collect();
        cells.push(row.run_ids.len().to_string());
        cells.extend(row.metrics.iter().map(|m| cell(m, " ± ")));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n{}", epoch_caption(table.epoch));
    out
}

/// A LaTeX `tabular`, each metric as `$mean \pm std$`, to paste into a paper.
pub(crate) fn to_latex(table: &ResultsTable) -> String {
    let escape = |s: &str| {
        s.chars().fold(String::new(), |mut out, c| {
            match c {
                '_' | '%' | '&' | '#' | '$' | '{' | '}' => {
                    out.push('\\');
                    out.push(c);
                }
                '\\' => out.push_str("\\textbackslash{}"),
                '~' => out.push_str("\\textasciitilde{}"),
                '^' => out.push_str("\\textasciicircum{}"),
                _ => out.push(c),
            }
            out
        })
    };
    let columns = table.group_by.len() + 1 + table.metrics.len();
    let align = "l".repeat(table.group_by.len()) + &"r".repeat(columns - table.group_by.len());
    let mut header: Vec<String> = table.group_by.iter().map(|s| escape(s)).collect();
    header.push("runs".into());
    header.extend(table.metrics.iter().map(|s| escape(s)));
    let mut out = format!(
        "% {}\n\\begin{{tabular}}{{{align}}}\n\\hline\n",
        epoch_caption(table.epoch)
    );
    let _ = writeln!(out, "{} \\\\\n\\hline", header.join(" & "));
    for row in &table.rows {
        let mut cells: Vec<String> = row.group.iter().map(|s| escape(s)).collect();
        cells.push(row.run_ids.len().to_string());
        cells.extend(row.metrics.iter().map(|m| match m {
            Some(_) => format!("${}$", cell(m, " \\pm ")),
            None => "--".into(),
        }));
        let _ = writeln!(out, "{} \\\\", cells.join(" & "));
    }
    out.push_str("\\hline\n\\end{tabular}\n");
    out
}

#[cfg(test)]
mod tests {
    use balancelab_shared::ResultsRow;

    use super::*;

    fn table() -> ResultsTable {
        ResultsTable {
            group_by: vec!["method.kind".into()],
            metrics: vec!["test.fused".into(), "test.unimodal[1]".into()],
            epoch: EpochChoice::Last,
            rows: vec![
                ResultsRow {
                    group: vec!["multi_loss".into()],
                    run_ids: vec![1],
                    metrics: vec![
                        Some(Summary {
                            n: 1,
                            mean: 0.9,
                            std: 0.0,
                        }),
                        None,
                    ],
                },
                ResultsRow {
                    group: vec!["mlb".into()],
                    run_ids: vec![2, 3, 4],
                    metrics: vec![
                        Some(Summary {
                            n: 3,
                            mean: 0.93,
                            std: 0.036055512754639925,
                        }),
                        Some(Summary {
                            n: 3,
                            mean: 0.8125,
                            std: 0.01,
                        }),
                    ],
                },
            ],
        }
    }

    #[test]
    fn exports_every_format() {
        let csv = to_csv(&table());
        assert_eq!(
            csv.lines().next().unwrap(),
            "method.kind,runs,test.fused mean,test.fused std,test.fused n,\
             test.unimodal[1] mean,test.unimodal[1] std,test.unimodal[1] n"
        );
        assert_eq!(
            csv.lines().nth(2).unwrap(),
            "mlb,3,0.93,0.036055512754639925,3,0.8125,0.01,3"
        );
        assert_eq!(csv.lines().nth(1).unwrap(), "multi_loss,1,0.9,0,1,,,0");

        let markdown = to_markdown(&table());
        assert_eq!(
            markdown,
            "| method.kind | runs | test.fused | test.unimodal[1] |\n\
             |---|---|---|---|\n\
             | multi_loss | 1 | 0.900 | - |\n\
             | mlb | 3 | 0.930 ± 0.036 | 0.812 ± 0.010 |\n\n\
             Each run at its last epoch.\n"
        );

        let latex = to_latex(&table());
        assert!(
            latex.starts_with("% Each run at its last epoch.\n\\begin{tabular}{lrrr}\n\\hline\n"),
            "{latex}"
        );
        assert!(latex.contains("method.kind & runs & test.fused & test.unimodal[1] \\\\"));
        assert!(
            latex.contains("multi\\_loss & 1 & $0.900$ & -- \\\\"),
            "{latex}"
        );
        assert!(latex.contains("mlb & 3 & $0.930 \\pm 0.036$ & $0.812 \\pm 0.010$ \\\\"));
    }
}
