//! Plain-text tables with aligned columns, and key/value lists: the CLI's readable output.

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are empty, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
        self
    }

    /// The table as text, one line per row, each ending in a newline; trailing spaces trimmed.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                let cells = std::iter::once(&self.header[c]).chain(self.rows.iter().map(|r| &r[c]));
                cells.map(|s| s.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(cell);
                let pad = width - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key:  value` lines with the values aligned, for one record (settings, a node's status).
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let pad = width - key.chars().count();
        out.push_str(key);
        out.push(':');
        out.extend(std::iter::repeat_n(' ', pad + 2));
        out.push_str(value);
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// `on` or `off`.
pub fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["NODE", "ADDRESS", "LEADER"]);
        t.row(vec!["1".into(), "127.0.0.1:7001".into(), "*".into()]);
        t.row(vec!["12".into(), "10.0.0.2:7001".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NODE  ADDRESS         LEADER\n\
             1     127.0.0.1:7001  *\n\
             12    10.0.0.2:7001\n"
        );
    }

    #[test]
    fn short_rows_are_padded_and_an_empty_table_is_its_header() {
        let mut t = Table::new(&["A", "B"]);
        assert_eq!(t.render(), "A  B\n");
        t.row(vec!["x".into()]);
        assert_eq!(t.render(), "A  B\nx\n");
    }

    #[test]
    fn key_values_align_their_values() {
        let text = key_values(&[("host", "siem.example".into()), ("heartbeat", "30s".into())]);
        assert_eq!(text, "host:       siem.example\nheartbeat:  30s\n");
        assert_eq!(key_values(&[("empty", String::new())]), "empty:\n");
    }
}
