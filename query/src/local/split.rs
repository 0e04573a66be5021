//! Splitting a trail file's JSON text into its records without building any value.
//!
//! CloudTrail writes one object per file, `{"Records":[{…},{…},…]}`, and most records are not
//! audited Connect events. Finding where each record ends is then most of the work of reading a
//! file, so [`RecordSplitter`] does it with a structural pass over 64-byte blocks, as simdjson
//! does: masks of quotes, backslashes, control bytes and brackets (AVX-512BW, AVX2 or SSE2,
//! chosen at run time: [`super::structural`]), the escaped characters found from runs of
//! backslashes, "inside a string" as a prefix XOR of the unescaped quotes, and only the
//! brackets outside strings visited one by one. It resumes at record boundaries, so a large
//! file is inflated and split in windows of bounded size instead of whole.
//!
//! What it checks on every byte of the file: the text is UTF-8; every string ends and holds no
//! raw control character; brackets nest and match; the top is one object with at most one
//! `Records` key, its value an array, and nothing after the object. What it leaves to the
//! record parser: the tokens inside a record (numbers, literals, escapes, the `:` and `,`
//! between them). Every record that can be a Connect event is parsed in full by serde_json and
//! refused there when malformed; a record that cannot be one is never read further.
//!
//! Takes a file's text (inflated), in pieces; gives the raw text and index of each record, or
//! the one reason the whole file is bad. Must never build a value, decide which records are
//! audited (the file reader, [`super::file`], does), or keep any of the text it is given.

use super::structural::{Classify, Isa, WithBlocks};

/// Splits the text of one trail file into the raw records of its `Records` array, fed in
/// pieces that each start where the last call stopped.
#[derive(Debug)]
pub(crate) struct RecordSplitter {
    phase: Phase,
    /// `Records` was seen (as an array, or `null`).
    records_key: bool,
    /// `Records` held an array.
    records_array: bool,
    /// Index of the next record in the array.
    index: usize,
    /// Open brackets of the value being skipped.
    stack: Vec<u8>,
    /// Newlines in the text before the current piece, for messages.
    lines_before: usize,
    /// Bytes of the current line before the current piece, for messages.
    column_before: usize,
    /// The instruction set of the structural pass.
    isa: Isa,
    /// A newline may have been passed since the last [`consumed`](Self::consumed): only then
    /// are the consumed bytes searched for lines (CloudTrail writes each file on one line).
    newline_seen: bool,
    /// The last value measured may hold a backslash (an escape).
    backslash: bool,
    /// The last value measured may hold a byte outside ASCII (it is then checked as UTF-8;
    /// an ASCII record is valid UTF-8 as it is).
    non_ascii: bool,
}

/// Where in the file's grammar the next piece starts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the top object.
    #[default]
    Start,
    /// After `{` of the top object: a key or `}`.
    FirstKey,
    /// After `,` in the top object: a key.
    Key,
    /// After a value of the top object: `,` or `}`.
    AfterValue,
    /// After `[` of `Records`: a record or `]`.
    FirstRecord,
    /// After `,` in `Records`: a record.
    Record,
    /// After a record: `,` or `]`.
    AfterRecord,
    /// After the top object: only whitespace.
    End,
}

impl RecordSplitter {
    /// A splitter at the start of a file, its structural pass run with `isa`.
    pub(crate) fn new(isa: Isa) -> Self {
        Self {
            phase: Phase::Start,
            records_key: false,
            records_array: false,
            index: 0,
            stack: Vec::new(),
            lines_before: 0,
            column_before: 0,
            isa,
            newline_seen: false,
            backslash: false,
            non_ascii: false,
        }
    }

    /// Reads `text` (the file's text from where the last call stopped) and calls `record` with
    /// the index and raw text of every complete record in it (valid UTF-8), and whether it
    /// may hold an escape (`false`: it has no backslash). Returns how many bytes were
    /// consumed: the caller drops them (see [`consumed`](Self::consumed)) and calls again with
    /// the rest followed by more text. With `eof`, `text` is all that is left of the file, and
    /// it must be consumed whole.
    ///
    /// The error is the reason the whole file is bad; records already passed to `record` came
    /// from a file that turned out bad and must be discarded.
    pub(crate) fn feed<'t>(
        &mut self,
        text: &'t [u8],
        eof: bool,
        record: &mut dyn FnMut(usize, &'t [u8], bool),
    ) -> Result<usize, String> {
        let mut done = 0;
        loop {
            let at = self.skip_whitespace(text, done);
            let Some(&byte) = text.get(at) else {
                return if eof { self.finish(text, at) } else { Ok(at) };
            };
            match self.phase {
                Phase::Start if byte == b'{' => {
                    self.phase = Phase::FirstKey;
                    done = at + 1;
                }
                Phase::Start => {
                    let not_object =
                        || "not a CloudTrail trail file: the top value is not an object".to_owned();
                    return Err(match byte {
                        b'[' | b'"' => not_object(),
                        // A literal or number is checked first: "This is not JSON" is not JSON.
                        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                            match self.value_end(text, at, eof)? {
                                Some(_) => not_object(),
                                None => return Ok(done),
                            }
                        }
                        _ => self.not_json("expected value", text, at),
                    });
                }
                Phase::FirstKey if byte == b'}' => {
                    self.phase = Phase::End;
                    done = at + 1;
                }
                Phase::FirstKey | Phase::Key => match self.member(text, at, eof)? {
                    Some(end) => done = end,
                    None => return Ok(done),
                },
                Phase::AfterValue => {
                    self.phase = match byte {
                        b',' => Phase::Key,
                        b'}' => Phase::End,
                        _ => return Err(self.not_json("expected `,` or `}`", text, at)),
                    };
                    done = at + 1;
                }
                Phase::FirstRecord if byte == b']' => {
                    self.phase = Phase::AfterValue;
                    done = at + 1;
                }
                Phase::FirstRecord | Phase::Record => {
                    self.non_ascii = true;
                    self.backslash = true;
                    let Some(end) = self.value_end(text, at, eof)? else {
                        return Ok(done);
                    };
                    if self.non_ascii {
                        self.utf8(text, at, end)?;
                    }
                    record(self.index, &text[at..end], self.backslash);
                    self.index += 1;
                    self.phase = Phase::AfterRecord;
                    done = end;
                }
                Phase::AfterRecord => {
                    self.phase = match byte {
                        b',' => Phase::Record,
                        b']' => Phase::AfterValue,
                        _ => return Err(self.not_json("expected `,` or `]`", text, at)),
                    };
                    done = at + 1;
                }
                Phase::End => return Err(self.not_json("trailing characters", text, at)),
            }
        }
    }

    /// Tells the splitter that the first `consumed` bytes of the last piece are dropped, so
    /// that messages still give the line and column in the whole file.
    pub(crate) fn consumed(&mut self, consumed: &[u8]) {
        let last = if std::mem::take(&mut self.newline_seen) {
            memchr::memrchr(b'\n', consumed)
        } else {
            None
        };
        match last {
            Some(last) => {
                self.lines_before += memchr::memchr_iter(b'\n', consumed).count();
                self.column_before = consumed.len() - last - 1;
            }
            None => self.column_before += consumed.len(),
        }
    }

    /// Whether the file had a `Records` array (checked at the end of the text).
    fn finish(&self, text: &[u8], at: usize) -> Result<usize, String> {
        match self.phase {
            Phase::End if self.records_array => Ok(at),
            Phase::End => Err("no `Records` array".into()),
            Phase::Start => Err(self.not_json("EOF while parsing a value", text, at)),
            Phase::FirstRecord | Phase::Record | Phase::AfterRecord => {
                Err(self.not_json("EOF while parsing a list", text, at))
            }
            Phase::FirstKey | Phase::Key | Phase::AfterValue => {
                Err(self.not_json("EOF while parsing an object", text, at))
            }
        }
    }

    /// One `"key": value` of the top object, from its opening quote at `at`: `Records` opens
    /// the array, any other value is skipped. `None` when the text ends inside it.
    fn member(&mut self, text: &[u8], at: usize, eof: bool) -> Result<Option<usize>, String> {
        if text[at] != b'"' {
            return Err(self.not_json("key must be a string", text, at));
        }
        let Some(key_end) = self.string_end(text, at, eof)? else {
            return Ok(None);
        };
        let key = self.utf8(text, at, key_end)?;
        let colon = self.skip_whitespace(text, key_end);
        match text.get(colon) {
            None if eof => return Err(self.not_json("EOF while parsing an object", text, colon)),
            None => return Ok(None),
            Some(b':') => {}
            Some(_) => return Err(self.not_json("expected `:`", text, colon)),
        }
        let value = self.skip_whitespace(text, colon + 1);
        let Some(&first) = text.get(value) else {
            return if eof {
                Err(self.not_json("EOF while parsing a value", text, value))
            } else {
                Ok(None)
            };
        };
        // A key spelt with escapes (`"R\u0065cords"`) is still `Records` to a JSON reader.
        let is_records = if key.contains('\\') {
            serde_json::from_str::<String>(key).is_ok_and(|k| k == "Records")
        } else {
            key == "\"Records\""
        };
        if !is_records {
            let Some(end) = self.value_end(text, value, eof)? else {
                return Ok(None);
            };
            self.utf8(text, value, end)?;
            self.phase = Phase::AfterValue;
            return Ok(Some(end));
        }
        if self.records_key {
            return Err("`Records` appears twice; which one holds the records is ambiguous".into());
        }
        if first == b'[' {
            self.records_key = true;
            self.records_array = true;
            self.phase = Phase::FirstRecord;
            return Ok(Some(value + 1));
        }
        let Some(end) = self.value_end(text, value, eof)? else {
            return Ok(None);
        };
        if &text[value..end] == b"null" {
            self.records_key = true;
            self.phase = Phase::AfterValue;
            return Ok(Some(end));
        }
        let kind = match first {
            b'{' => "map",
            b'"' => "string",
            b't' | b'f' => "boolean",
            _ => "number",
        };
        Err(format!(
            "`Records` is not an array of records: invalid type: {kind}, expected an array"
        ))
    }

    /// The end (exclusive) of the value starting at `at`, `None` when the text ends first.
    fn value_end(&mut self, text: &[u8], at: usize, eof: bool) -> Result<Option<usize>, String> {
        match text[at] {
            b'{' | b'[' => self.container_end(text, at, eof),
            b'"' => self.string_end(text, at, eof),
            _ => {
                let end = text[at..]
                    .iter()
                    .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                    .map(|n| at + n);
                let end = match end {
                    Some(end) => end,
                    None if eof => text.len(),
                    None => return Ok(None),
                };
                // A number or literal: rare here (CloudTrail's records are objects), so the
                // full parser checks it.
                serde_json::from_slice::<serde::de::IgnoredAny>(&text[at..end])
                    .map_err(|_| self.not_json("expected value", text, at))?;
                Ok(Some(end))
            }
        }
    }

    /// The end of the string whose opening quote is at `at`.
    fn string_end(&self, text: &[u8], at: usize, eof: bool) -> Result<Option<usize>, String> {
        let mut i = at + 1;
        while let Some(n) = memchr::memchr2(b'"', b'\\', &text[i..]) {
            if let Some(c) = text[i..i + n].iter().position(|&b| b < 0x20) {
                return Err(self.control_character(text, i + c));
            }
            i += n;
            if text[i] == b'"' {
                return Ok(Some(i + 1));
            }
            i += 2;
            if i > text.len() {
                break;
            }
        }
        if let Some(c) = text
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b < 0x20))
        {
            return Err(self.control_character(text, i + c));
        }
        if eof {
            Err(self.not_json("EOF while parsing a string", text, text.len()))
        } else {
            Ok(None)
        }
    }

    /// The end of the object or array whose opening bracket is at `at`: the structural pass.
    fn container_end(
        &mut self,
        text: &[u8],
        at: usize,
        eof: bool,
    ) -> Result<Option<usize>, String> {
        self.isa.run(ContainerEnd {
            splitter: self,
            text,
            at,
            eof,
        })
    }

    /// [`container_end`](Self::container_end) with one instruction set (inlined into the
    /// function [`Isa::run`] compiles with its features).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn container_end_with<C: Classify>(
        &mut self,
        classify: C,
        text: &[u8],
        at: usize,
        eof: bool,
    ) -> Result<Option<usize>, String> {
        self.stack.clear();
        // Kept in registers for the loop, stored once at the end.
        let mut non_ascii = false;
        let mut control_seen = false;
        let mut backslash_seen = false;
        let mut backslashes = EscapeCarry::default();
        let mut in_string_before = 0u64;
        let mut block_start = at;
        let found = loop {
            if block_start >= text.len() {
                break None;
            }
            let block = classify.read(&text[block_start..]);
            non_ascii |= block.non_ascii;
            backslash_seen |= block.backslash != 0;
            let escaped = backslashes.next(block.backslash);
            let quotes = block.quote & !escaped;
            if block.brackets | block.control == 0 {
                // No bracket to place and no control byte to check (about half the blocks):
                // only whether the block ends inside a string matters, the parity of its quotes.
                in_string_before ^= 0u64.wrapping_sub(u64::from(quotes.count_ones() & 1));
                block_start += 64;
                continue;
            }
            let in_string = prefix_xor(quotes) ^ in_string_before;
            // All ones when the block ends inside a string.
            in_string_before = 0u64.wrapping_sub(in_string >> 63);

            let mut brackets = block.brackets & !in_string;
            let mut end = None;
            while brackets != 0 {
                let i = brackets.trailing_zeros() as usize;
                brackets &= brackets - 1;
                let byte = text[block_start + i];
                if byte == b'{' || byte == b'[' {
                    self.stack.push(byte);
                    continue;
                }
                let opened = self.stack.pop();
                if opened != Some(byte - 2) {
                    let what = if byte == b'}' { "`}`" } else { "`]`" };
                    return Err(self.not_json(
                        &format!("unexpected {what}"),
                        text,
                        block_start + i,
                    ));
                }
                if self.stack.is_empty() {
                    end = Some(i);
                    break;
                }
            }
            let before_end = end.map_or(u64::MAX, |i| (1u64 << i) - 1);
            // Whitespace between a record's tokens may hold newlines: all are control bytes.
            control_seen |= block.control != 0;
            let control = block.control & in_string & before_end;
            if control != 0 {
                let i = control.trailing_zeros() as usize;
                return Err(self.control_character(text, block_start + i));
            }
            if let Some(i) = end {
                break Some(block_start + i + 1);
            }
            block_start += 64;
        };
        self.non_ascii = non_ascii;
        self.backslash = backslash_seen;
        self.newline_seen |= control_seen;
        match found {
            Some(end) => Ok(Some(end)),
            None if eof => {
                let what = if text[at] == b'{' {
                    "an object"
                } else {
                    "a list"
                };
                Err(self.not_json(&format!("EOF while parsing {what}"), text, text.len()))
            }
            None => Ok(None),
        }
    }

    /// Where the whitespace from `at` ends.
    fn skip_whitespace(&mut self, text: &[u8], mut at: usize) -> usize {
        while let Some(&b) = text.get(at) {
            match b {
                b' ' | b'\t' | b'\r' => {}
                b'\n' => self.newline_seen = true,
                _ => break,
            }
            at += 1;
        }
        at
    }

    /// `text[start..end]` as a string, or the file's error.
    fn utf8<'t>(&self, text: &'t [u8], start: usize, end: usize) -> Result<&'t str, String> {
        std::str::from_utf8(&text[start..end])
            .map_err(|e| self.not_json("invalid unicode code point", text, start + e.valid_up_to()))
    }

    fn control_character(&self, text: &[u8], at: usize) -> String {
        self.not_json(
            "control character (\\u0000-\\u001F) found while parsing a string",
            text,
            at,
        )
    }

    /// serde_json's wording, with the line and column (1-based, in bytes) in the whole file.
    fn not_json(&self, what: &str, text: &[u8], at: usize) -> String {
        let before = &text[..at.min(text.len())];
        let (line, column) = match memchr::memrchr(b'\n', before) {
            Some(last) => (
                self.lines_before + memchr::memchr_iter(b'\n', before).count() + 1,
                at - last,
            ),
            None => (self.lines_before + 1, self.column_before + at + 1),
        };
        format!("not JSON: {what} at line {line} column {column}")
    }
}

/// [`RecordSplitter::container_end`]'s arguments, for [`Isa::run`].
struct ContainerEnd<'s, 't> {
    splitter: &'s mut RecordSplitter,
    text: &'t [u8],
    at: usize,
    eof: bool,
}

impl WithBlocks for ContainerEnd<'_, '_> {
    type Output = Result<Option<usize>, String>;

    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn with<C: Classify>(self, classify: C) -> Self::Output {
        self.splitter
            .container_end_with(classify, self.text, self.at, self.eof)
    }
}

/// The bits of the characters escaped by a backslash, block after block (simdjson's escape
/// scanner): a backslash escapes the next byte unless it is itself escaped.
#[derive(Debug, Default)]
struct EscapeCarry {
    /// The first byte of the next block is escaped.
    next_is_escaped: u64,
}

impl EscapeCarry {
    const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;

    fn next(&mut self, backslash: u64) -> u64 {
        if backslash == 0 {
            return std::mem::take(&mut self.next_is_escaped);
        }
        let potential = backslash & !self.next_is_escaped;
        // Each run of backslashes, as a subtraction: the bits that end a run at an odd length
        // from its start escape the byte after it.
        let maybe_escaped = potential << 1;
        let escape_and_terminal =
            (maybe_escaped | Self::ODD_BITS).wrapping_sub(potential) ^ Self::ODD_BITS;
        let escaped = escape_and_terminal ^ (backslash | self.next_is_escaped);
        let escape = escape_and_terminal & backslash;
        self.next_is_escaped = escape >> 63;
        escaped
    }
}

/// Bit i is the XOR of bits 0..=i: with quote bits, "inside a string" (the opening quote
/// included, the closing one not).
fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` fed in pieces of `piece` bytes (the way windows of inflated text come),
    /// dropping what each call consumed.
    /// With every instruction set this CPU has, all giving the same result.
    fn split(text: &[u8], piece: usize) -> Result<Vec<(usize, String)>, String> {
        let mut sets = Isa::available().into_iter();
        let first = sets.next().expect("one set at least");
        let result = split_with(first, text, piece);
        for isa in sets {
            assert_eq!(
                split_with(isa, text, piece),
                result,
                "{isa:?} against {first:?} on {text:?} in pieces of {piece}"
            );
        }
        result
    }

    fn split_with(isa: Isa, text: &[u8], piece: usize) -> Result<Vec<(usize, String)>, String> {
        let mut splitter = RecordSplitter::new(isa);
        let mut records = Vec::new();
        let mut buffer = Vec::new();
        let mut offered = 0;
        loop {
            let next = (offered + piece).min(text.len());
            buffer.extend_from_slice(&text[offered..next]);
            offered = next;
            let eof = offered == text.len();
            let consumed = splitter.feed(&buffer, eof, &mut |i, raw, _| {
                records.push((i, String::from_utf8(raw.to_vec()).expect("UTF-8")));
            })?;
            if eof {
                assert_eq!(consumed, buffer.len());
                return Ok(records);
            }
            splitter.consumed(&buffer[..consumed]);
            buffer.drain(..consumed);
        }
    }

    /// What serde_json makes of the same text, as the splitter should (for valid JSON).
    fn reference(text: &[u8]) -> Vec<(usize, String)> {
        #[derive(serde::Deserialize)]
        struct Records<'a> {
            #[serde(rename = "Records", borrow)]
            records: Vec<&'a serde_json::value::RawValue>,
        }
        let parsed: Records<'_> = serde_json::from_slice(text).expect("valid JSON");
        parsed
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.get().to_owned()))
            .collect()
    }

    #[test]
    fn records_come_out_whole_whatever_the_pieces() {
        let text = br#" {"Records": [ {"a":"x{[\"}","b":{"c":[1,2,{"d":"\\"}]}} ,
            {"e":"\\\\\"]"}, 7, "s}", null, [1,[2]], {"long":"0123456789012345678901234567890123456789012345678901234567890123456789"} ] ,
            "Other": {"x":[{}]} }
        "#;
        let expected = reference(text);
        assert_eq!(expected.len(), 7);
        for piece in [1, 2, 3, 7, 16, 63, 64, 65, 1000] {
            assert_eq!(split(text, piece).unwrap(), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn escapes_are_found_across_blocks_as_byte_by_byte() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..2000 {
            let text: Vec<u8> = (0..256)
                .map(|_| if rng.u8(..) < 160 { b'\\' } else { b'a' })
                .collect();
            let mut expected = vec![false; text.len()];
            let mut escape_next = false;
            for (i, &b) in text.iter().enumerate() {
                expected[i] = escape_next;
                escape_next = b == b'\\' && !escape_next;
            }
            let mut carry = EscapeCarry::default();
            for (k, block) in text.chunks(64).enumerate() {
                let escaped = carry.next(crate::local::structural::scalar(block).backslash);
                for (i, &e) in expected[k * 64..k * 64 + block.len()].iter().enumerate() {
                    assert_eq!(escaped & (1 << i) != 0, e, "block {k} byte {i}");
                }
            }
        }
    }

    #[test]
    fn generated_json_splits_as_serde_json_reads_it() {
        let mut rng = fastrand::Rng::with_seed(3);
        for round in 0..300 {
            let records: Vec<serde_json::Value> =
                (0..rng.usize(0..12)).map(|_| value(&mut rng, 0)).collect();
            let text = serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap();
            let expected = reference(&text);
            for piece in [5, 64, 1 << 20] {
                assert_eq!(split(&text, piece).unwrap(), expected, "round {round}");
            }
        }
    }

    fn value(rng: &mut fastrand::Rng, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        let string = |rng: &mut fastrand::Rng| {
            let pool = [
                "\"", "\\", "{", "}", "[", "]", "a", "é", "\u{1}", "\n", " ", "\\\\\"",
            ];
            (0..rng.usize(0..90))
                .map(|_| pool[rng.usize(..pool.len())])
                .collect::<String>()
        };
        match rng.usize(0..if depth > 4 { 3 } else { 5 }) {
            0 => Value::String(string(rng)),
            1 => Value::from(rng.i64(..)),
            2 => Value::Null,
            3 => (0..rng.usize(0..5))
                .map(|_| value(rng, depth + 1))
                .collect(),
            _ => Value::Object(
                (0..rng.usize(0..6))
                    .map(|_| (string(rng), value(rng, depth + 1)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn bad_files_are_named_as_serde_json_names_them() {
        let cases: [(&[u8], &str); 17] = [
            (
                b"",
                "not JSON: EOF while parsing a value at line 1 column 1",
            ),
            (b"\x00\x01", "not JSON: expected value at line 1 column 1"),
            (b"[]", "the top value is not an object"),
            (b"true", "the top value is not an object"),
            (
                b"This is not JSON",
                "not JSON: expected value at line 1 column 1",
            ),
            (b"{}", "no `Records` array"),
            (br#"{"Records": null}"#, "no `Records` array"),
            (
                br#"{"Records": {}}"#,
                "`Records` is not an array of records: invalid type: map",
            ),
            (
                br#"{"Records": [], "Records": []}"#,
                "`Records` appears twice",
            ),
            (
                br#"{"Records": [], "R\u0065cords": []}"#,
                "`Records` appears twice",
            ),
            (
                b"{\"Records\": []}\n{}",
                "not JSON: trailing characters at line 2 column 1",
            ),
            (
                b"{\"Records\": [{\"a\": \"\xff\"}]}",
                "invalid unicode code point at line 1 column 21",
            ),
            (
                b"{\"Records\": [{\"a\": \"\x00\"}]}",
                "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 21",
            ),
            (
                br#"{"Records": [{"a": [}]}"#,
                "not JSON: unexpected `}` at line 1 column 21",
            ),
            (
                br#"{"Records": [{"a": "#,
                "not JSON: EOF while parsing an object",
            ),
            (
                br#"{"Records": [{} {}]}"#,
                "not JSON: expected `,` or `]` at line 1 column 17",
            ),
            (
                br#"{"Records": [tru]}"#,
                "not JSON: expected value at line 1 column 14",
            ),
        ];
        for (text, message) in cases {
            for piece in [1, 4, 1000] {
                let err = split(text, piece).expect_err(message);
                assert!(
                    err.contains(message),
                    "{text:?} in pieces of {piece}: {err}"
                );
            }
        }
    }

    #[test]
    fn deep_nesting_needs_no_recursion() {
        let mut text = br#"{"Records": [{"a": "#.to_vec();
        text.extend(std::iter::repeat_n(b'[', 100_000));
        text.extend(std::iter::repeat_n(b']', 100_000));
        text.extend_from_slice(b"}]}");
        let records = split(&text, 1 << 16).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].1.len(), text.len() - br#"{"Records": []}"#.len());
    }
}
