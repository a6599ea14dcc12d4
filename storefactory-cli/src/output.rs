//! Printing results: aligned tables for people, JSON or YAML for scripts.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use storefactory_core::store::Timestamp;

use crate::cli::OutputFormat;

/// Prints `value` as JSON or YAML; for tables, calls `table` instead.
pub fn print<T: Serialize + ?Sized>(
    format: OutputFormat,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<()> {
    let text = match format {
        OutputFormat::Table => table(),
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
            text.push('\n');
            text
        }
        OutputFormat::Yaml => storefactory_core::yaml::to_string(value)
            .map_err(|e| anyhow::anyhow!("encoding YAML: {e}"))?,
    };
    write_stdout(&text)
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

/// Columns aligned on the widest cell, two spaces apart.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            rows: vec![headers.into_iter().map(Into::into).collect()],
        }
    }

    /// Adds a row.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The table as text, each line ending with a newline.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                // Control characters in names would let stored text move the cursor.
                let cell: String = cell
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                line.push_str(&cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key/value lines, keys aligned: the human view of one object.
pub fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n", width = width + 1, k = format!("{k}:")))
        .collect()
}

/// How long ago `at` was, briefly: `42s`, `5m`, `3h`, `2d`.
pub fn age(at: Timestamp) -> String {
    let seconds = (Timestamp::now().0 - at.0).max(0) / 1000;
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_strip_control_characters() {
        let mut table = Table::new(["ID", "NAME"]);
        table.row(["a", "first"]).row(["longer-id", "x\u{1b}[2J"]);
        assert_eq!(
            table.render(),
            "ID         NAME\na          first\nlonger-id  x [2J\n"
        );
    }

    #[test]
    fn details_align_keys() {
        assert_eq!(
            details(&[("id", "a".into()), ("status", "ready".into())]),
            "id:      a\nstatus:  ready\n"
        );
    }

    #[test]
    fn ages_are_short() {
        let now = Timestamp::now().0;
        assert_eq!(age(Timestamp(now - 5_000)), "5s");
        assert_eq!(age(Timestamp(now - 600_000)), "10m");
        assert_eq!(age(Timestamp(now - 3 * 86_400_000)), "3d");
    }
}
