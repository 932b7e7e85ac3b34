//! Where saphyr-parser refuses what go-yaml (kubectl) reads: the text of a document is rewritten
//! at the place the parser complains, keeping the value the same, and parsed again. `Edits`
//! remembers the rewrites so that errors still point into the text as written.

/// Changes made to a piece's text before parsing (see `parse_chunk`): characters removed (-1) or
/// spaces inserted (+n) at character indices of the original text, kept so that positions in
/// errors are those of the original.
#[derive(Default)]
pub struct Edits(Vec<(usize, isize)>);

impl Edits {
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The original character index of character `j` of the edited text.
    pub fn original(&self, j: usize) -> usize {
        // `shift` is (edited index - original index) past the edits seen so far.
        let mut shift: isize = 0;
        for &(r, delta) in &self.0 {
            let at = r as isize + shift;
            let j = j as isize;
            if j < at {
                break;
            }
            if delta > 0 && j < at + delta {
                return r;
            }
            shift += delta;
        }
        (j as isize - shift).max(0) as usize
    }

    /// Records a change at character `j` of the current edited text.
    pub fn record(&mut self, j: usize, delta: isize) {
        let r = self.original(j);
        let i = self.0.partition_point(|&(x, _)| x <= r);
        self.0.insert(i, (r, delta));
    }

    /// 1-based line and column in `original` of character `i` of the edited text.
    pub fn position(&self, original: &str, i: usize) -> (usize, usize) {
        let i = self.original(i);
        let (mut line, mut col) = (1, 1);
        for c in original.chars().take(i) {
            if c == '\n' {
                (line, col) = (line + 1, 1);
            } else {
                col += 1;
            }
        }
        (line, col)
    }
}

/// go-yaml (libyaml) does not check indentation inside flow collections (`[`, `{`) and their
/// quoted scalars; saphyr-parser wants their lines indented past the enclosing block. Given its
/// complaint at character `at`, the first thing on its line, one space is put before it (white
/// space between flow tokens, or folded away in a quoted scalar, so the value is the same).
pub fn indent_flow_line(text: &str, at: usize, edits: &mut Edits) -> Option<String> {
    let (pos, _) = text.char_indices().nth(at)?;
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..pos].bytes().all(|b| b == b' ') {
        return None;
    }
    let mut fixed = String::with_capacity(text.len() + 1);
    fixed.push_str(&text[..pos]);
    fixed.push(' ');
    fixed.push_str(&text[pos..]);
    edits.record(at, 1);
    Some(fixed)
}

/// The same for the lines of a quoted scalar starting at character `at`: each line after the
/// first gets one more space (leading white space of those lines is folded away).
pub fn indent_quoted_lines(text: &str, at: usize, edits: &mut Edits) -> Option<String> {
    let (start, quote) = text.char_indices().nth(at)?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let mut breaks = Vec::new();
    let mut chars = text[start + 1..].chars().peekable();
    let mut index = at + 1;
    while let Some(c) = chars.next() {
        match c {
            '\\' if quote == '"' => {
                chars.next();
                index += 1;
            }
            '\'' if quote == '\'' && chars.peek() == Some(&'\'') => {
                chars.next();
                index += 1;
            }
            c if c == quote => break,
            '\n' => breaks.push(index + 1),
            _ => {}
        }
        index += 1;
    }
    if breaks.is_empty() {
        return None;
    }
    let mut fixed = text.to_string();
    for &b in breaks.iter().rev() {
        let (pos, _) = fixed.char_indices().nth(b)?;
        fixed.insert(pos, ' ');
        edits.record(b, 1);
    }
    Some(fixed)
}

/// go-yaml reads `\'` in a double-quoted scalar as `'`; YAML 1.2 (and saphyr-parser) has no such
/// escape. Given the parser's complaint about the scalar starting at character `at`, rewrite each
/// `\'` of that scalar as `'` (the same value), or `None` if it has none (a real error).
pub fn fix_single_quote_escapes(text: &str, at: usize, edits: &mut Edits) -> Option<String> {
    let (start, quote) = text.char_indices().nth(at)?;
    if quote != '"' {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..=start]);
    let mut removed = Vec::new();
    let mut chars = text[start + 1..].char_indices().peekable();
    let mut index = at + 1;
    let mut end = text.len();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => {
                end = start + 1 + off;
                break;
            }
            '\\' if chars.peek().map(|p| p.1) == Some('\'') => {
                removed.push(index);
                index += 1;
                continue;
            }
            '\\' => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                    index += 1;
                }
            }
            _ => out.push(c),
        }
        index += 1;
    }
    if removed.is_empty() {
        return None;
    }
    out.push_str(&text[end..]);
    // Recorded from the last, so each index is still one of the current text.
    for r in removed.into_iter().rev() {
        edits.record(r, -1);
    }
    Some(out)
}

/// go-yaml takes a tab after a mapping's `:` as separating white space (as YAML 1.2 does);
/// saphyr-parser 0.3 wants a space there and complains at the next token, character `at`. The
/// tabs between that `:` and the token become spaces: the same length, so positions stay right.
pub fn tab_after_colon(text: &str, at: usize) -> Option<String> {
    let (pos, _) = text.char_indices().nth(at)?;
    let before = &text[..pos];
    let gap = before.len() - before.trim_end_matches([' ', '\t']).len();
    let run = pos - gap..pos;
    if gap == 0 || !text[run.clone()].contains('\t') || !text[..run.start].ends_with(':') {
        return None;
    }
    let mut fixed = text.to_string();
    fixed.replace_range(run, &" ".repeat(gap));
    Some(fixed)
}
