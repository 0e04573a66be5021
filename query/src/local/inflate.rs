//! The gzip inflaters: a trail file's compressed bytes, held whole, into its whole text or
//! into windows of it.
//!
//! [`inflate_whole`] takes a file of at most [`WHOLE_MAX`] bytes of text that is exactly one
//! gzip member, and inflates it with libdeflate into one buffer; it refuses anything else.
//! [`Gunzip`] takes any file and a limit; fills the windows its caller provides with
//! the text of every gzip member in turn. Guarantees that each member's CRC-32 and length are
//! checked before the next one starts (and before the end is reported), that no more than the
//! limit is ever produced (a gzip bomb is an error, not a full memory), and that a forged
//! trailer gets no large buffer. Never panics on bad input: every problem is the reason the
//! file is bad. Must never look at the text it produces: splitting it is
//! [`split`](super::split)'s work.

/// Inflated text is split in windows of this size (or the whole text, when smaller): memory
/// stays bounded by the window, not by the largest file, and the CRC and the structural pass
/// read each window while it is still in the core's L2 cache (1 MiB measured 3 % faster than
/// 4 MiB). A record longer than the window grows it.
pub(super) const WINDOW: usize = 1 << 20;

/// The most JSON one trail file may inflate to. CloudTrail's files are far smaller (tens of
/// MB); a file past this is a gzip bomb or not CloudTrail, and is reported, not read on.
pub(super) const MAX_TRAIL_JSON: usize = 4 << 30;

/// The largest text a trail file may have to be inflated whole by libdeflate
/// ([`inflate_whole`]) rather than window by window by zlib-rs: libdeflate inflates 1.4–1.8×
/// faster here (BENCHMARKS.md), but only into one buffer the size of the whole text, which each
/// scanning thread keeps. 16 MiB a thread keeps the scan's peak RSS under 64 MiB on trails whose
/// files reach 133 MB of JSON (the larger ones are inflated in windows).
pub const WHOLE_MAX: usize = 16 << 20;

/// The text a gzip file declares (the last member's ISIZE), when it is small enough to be
/// inflated whole ([`WHOLE_MAX`]) and not empty.
pub(super) fn whole_size(input: &[u8]) -> Option<usize> {
    let trailer = input.len().checked_sub(4).and_then(|at| input.get(at..))?;
    let declared = usize::try_from(u32::from_le_bytes(trailer.try_into().ok()?)).ok()?;
    (declared > 0 && declared <= WHOLE_MAX).then_some(declared)
}

/// Inflates a one-member gzip file held whole into `out`, exactly [`whole_size`] bytes long,
/// with libdeflate. `true` only when the file is exactly that one member, checked: libdeflate
/// checks the first member's CRC-32 and length against the trailer that follows it; the
/// length is the one the file's last 4 bytes declare, and those 4 bytes occur nowhere earlier
/// in the file, so the first member's trailer is the file's last 8 bytes (another member or
/// anything else after it would put a copy of its length earlier). `false` for anything else
/// (more members, data after the member, a forged trailer, corrupt data, and by chance a file
/// whose compressed bytes hold its length's 4 bytes): the caller then inflates the file window
/// by window ([`Gunzip`]), which reads every member and names what is wrong. Never panics.
pub(super) fn inflate_whole(
    inflater: &mut libdeflater::Decompressor,
    input: &[u8],
    out: &mut [u8],
) -> bool {
    let Some(isize_at) = input.len().checked_sub(4) else {
        return false;
    };
    let declared = &input[isize_at..];
    matches!(inflater.gzip_decompress(input, out), Ok(n) if n == out.len())
        && whole_size(input) == Some(out.len())
        && memchr::memmem::find(&input[..input.len() - 1], declared).is_none()
}

/// Inflates every gzip member of a compressed file held whole, into windows the caller
/// provides, checking each member's CRC-32 and length. Inflating from the whole input into
/// large output buffers is several times faster than a streaming decoder's small reads.
pub(super) struct Gunzip<'a> {
    input: &'a [u8],
    /// Where the next member's header starts, when no member is open.
    next: usize,
    member: Option<Member>,
    /// Bytes inflated so far, all members.
    produced: usize,
    limit: usize,
}

/// The gzip member being inflated.
struct Member {
    /// Where its deflate data starts in the input.
    data: usize,
    inflate: flate2::Decompress,
    crc: crc32fast::Hasher,
    len: usize,
}

impl<'a> Gunzip<'a> {
    /// An inflater refusing to produce more than `limit` bytes.
    pub(super) fn new(input: &'a [u8], limit: usize) -> Self {
        Self {
            input,
            next: 0,
            member: None,
            produced: 0,
            limit,
        }
    }

    /// The size of the first window: the last member's ISIZE (the whole text, for the usual
    /// single member) up to [`WINDOW`], and only as far as a plausible ratio goes, so that a
    /// forged trailer gets no large buffer.
    pub(super) fn first_window(&self) -> usize {
        let input = self.input;
        let declared = input.len().checked_sub(4).map_or(0, |at| {
            u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]])
        });
        usize::try_from(declared)
            .unwrap_or(WINDOW)
            .saturating_add(1)
            .min(input.len().saturating_mul(64))
            .clamp(64 << 10, WINDOW)
    }

    /// Appends inflated text to `out`, up to its capacity. `Ok(true)` once every member has
    /// been inflated and checked.
    pub(super) fn fill(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        let truncated = || "truncated gzip (unexpected end of data)".to_owned();
        loop {
            if out.len() == out.capacity() {
                return Ok(false);
            }
            let member = match &mut self.member {
                Some(member) => member,
                None if self.next >= self.input.len() => return Ok(true),
                None => {
                    let at = self.next;
                    let header = gzip_header_len(&self.input[at..]).ok_or_else(|| {
                        if at == 0 {
                            "corrupt gzip: bad header".to_owned()
                        } else {
                            format!("corrupt gzip: data after member ending at byte {at}")
                        }
                    })?;
                    self.member.insert(Member {
                        data: at + header,
                        inflate: flate2::Decompress::new(false),
                        crc: crc32fast::Hasher::new(),
                        len: 0,
                    })
                }
            };
            let consumed = usize::try_from(member.inflate.total_in()).unwrap_or(usize::MAX);
            let rest = self.input.get(member.data + consumed..).unwrap_or_default();
            let before = out.len();
            let status = member
                .inflate
                .decompress_vec(rest, out, flate2::FlushDecompress::Finish)
                .map_err(|e| format!("corrupt gzip: {e}"))?;
            member.crc.update(&out[before..]);
            member.len += out.len() - before;
            self.produced += out.len() - before;
            if self.produced > self.limit {
                return Err(format!(
                    "inflates to more than {} bytes: not a CloudTrail file (gzip bomb?)",
                    self.limit
                ));
            }
            match status {
                flate2::Status::StreamEnd => {}
                // Out of room: the caller makes room and calls again.
                _ if out.len() == out.capacity() => return Ok(false),
                // Room left but no more input: the file was cut short.
                _ => return Err(truncated()),
            }
            let end =
                member.data + usize::try_from(member.inflate.total_in()).unwrap_or(usize::MAX);
            let trailer = self.input.get(end..end + 8).ok_or_else(truncated)?;
            let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
            let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
            // ISIZE is the length modulo 2^32.
            #[allow(clippy::cast_possible_truncation)]
            let member_len = member.len as u32;
            if member_len != len || member.crc.clone().finalize() != crc {
                return Err("corrupt gzip: checksum or length does not match the data".into());
            }
            self.member = None;
            self.next = end + 8;
        }
    }
}

/// The length of the gzip member header at the start of `input` (RFC 1952), `None` when it is
/// not one.
fn gzip_header_len(input: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if input.len() < 10 || input[0] != 0x1f || input[1] != 0x8b || input[2] != 8 {
        return None;
    }
    let flags = input[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let n = usize::from(u16::from_le_bytes([*input.get(at)?, *input.get(at + 1)?]));
        at += 2 + n;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += memchr::memchr(0, input.get(at..)?)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= input.len()).then_some(at)
}

/// Inflates the gzip file in `file[..len]` whole ([`inflate_whole`]) into `file[len..]`,
/// growing the buffer as needed; the text's length when it was taken whole, `None` when the
/// file is to be inflated window by window ([`Gunzip`]).
pub(super) fn inflate_whole_after(
    libdeflate: &mut libdeflater::Decompressor,
    file: &mut Vec<u8>,
    len: usize,
) -> Option<usize> {
    let size = whole_size(&file[..len])?;
    grow(file, len + size);
    let (input, rest) = file.split_at_mut(len);
    inflate_whole(libdeflate, input, &mut rest[..size]).then_some(size)
}

/// Makes `buffer` at least `len` bytes long, the new ones zeroed (and so, in memory).
pub(super) fn grow(buffer: &mut Vec<u8>, len: usize) {
    if buffer.len() < len {
        buffer.reserve_exact(len - buffer.len());
        buffer.resize(len, 0);
    }
}

/// The scan's inflate and nothing after it, for a benchmark's floor: the gzip file in
/// `file[..len]` is inflated as the scan inflates it (whole by libdeflate after its bytes, up
/// to [`WHOLE_MAX`] of text, else window by window by zlib-rs into `window`) and its text
/// thrown away. Its length, or why the file is bad.
pub fn inflate_only(
    libdeflate: &mut libdeflater::Decompressor,
    file: &mut Vec<u8>,
    len: usize,
    window: &mut Vec<u8>,
) -> Result<usize, String> {
    if let Some(size) = inflate_whole_after(libdeflate, file, len) {
        return Ok(size);
    }
    let mut inflater = Gunzip::new(&file[..len], MAX_TRAIL_JSON);
    let mut total = 0;
    loop {
        window.clear();
        if window.capacity() < WINDOW {
            window.reserve_exact(WINDOW);
        }
        let eof = inflater.fill(window)?;
        total += window.len();
        if eof {
            return Ok(total);
        }
    }
}

/// Inflates a whole gzip file (every member, checked) held in memory: a CloudTrail digest
/// file. At most [`MAX_TRAIL_JSON`] bytes.
pub fn gunzip(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut inflater = Gunzip::new(input, MAX_TRAIL_JSON);
    // Digests are small: start near their size (not a scan window) and double.
    let mut text = Vec::with_capacity((input.len() * 8).clamp(4096, WINDOW));
    loop {
        if inflater.fill(&mut text)? {
            return Ok(text);
        }
        if text.len() == text.capacity() {
            text.reserve(text.capacity());
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Inflates all of `input` as the scanner does, in small windows.
    pub(crate) fn inflate(input: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        let mut inflater = Gunzip::new(input, limit);
        let mut text = Vec::new();
        let mut window = Vec::with_capacity(4096);
        loop {
            let eof = inflater.fill(&mut window)?;
            text.extend_from_slice(&window);
            window.clear();
            if eof {
                return Ok(text);
            }
        }
    }

    pub(crate) fn gz(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut builder = flate2::GzBuilder::new();
        if let Some(name) = name {
            builder = builder.filename(name).comment("c").extra(vec![1, 2, 3]);
        }
        let mut enc = builder.write(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_reads_every_member_and_checks_each() {
        // Header fields, several members, a member larger than its neighbour's ISIZE.
        let big: Vec<u8> = (0..300_000_u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut both = gz(&big, Some("a.json"));
        both.extend(gz(b"tail", None));
        let text = inflate(&both, usize::MAX).unwrap();
        assert_eq!(text.len(), big.len() + 4);
        assert!(text.starts_with(&big) && text.ends_with(b"tail"));

        let mut bad_crc = gz(b"{\"Records\":[]}", None);
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        let err = inflate(&bad_crc, usize::MAX).unwrap_err();
        assert!(err.contains("checksum"), "{err}");

        let mut garbage_after = gz(b"{}", None);
        garbage_after.extend_from_slice(b"garbage!!!!");
        let err = inflate(&garbage_after, usize::MAX).unwrap_err();
        assert!(err.contains("data after member"), "{err}");

        // Past the limit, inflation stops and the file is reported.
        let zeros = gz(&vec![0; 8 << 20], None);
        assert!(zeros.len() < 64 << 10, "a high ratio");
        let err = inflate(&zeros, 1 << 20).unwrap_err();
        assert!(err.contains("gzip bomb"), "{err}");
        assert_eq!(inflate(&zeros, 8 << 20).unwrap().len(), 8 << 20);

        // A forged ISIZE neither breaks the read nor is believed.
        let mut forged = gz(b"{}", None);
        let n = forged.len();
        forged[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = inflate(&forged, usize::MAX).unwrap_err();
        assert!(err.contains("length"), "{err}");
    }

    /// `inflate_whole` on `input`: the text, when it took the file whole.
    fn whole(input: &[u8]) -> Option<Vec<u8>> {
        let size = whole_size(input)?;
        let mut out = vec![0; size];
        inflate_whole(&mut libdeflater::Decompressor::new(), input, &mut out).then_some(out)
    }

    #[test]
    fn a_file_is_inflated_whole_only_when_it_is_exactly_one_member() {
        let text: Vec<u8> = (0..200_000_u32)
            .flat_map(|i| format!("{{\"n\":{i}}},").into_bytes())
            .collect();
        let one = gz(&text, Some("a.json"));
        assert_eq!(whole(&one).as_deref(), Some(&text[..]));
        // Two members: libdeflate alone would give the first and stop. The same member twice
        // is the case its own checks cannot see (the last trailer is the first's).
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        assert_eq!(whole(&twice), None);
        assert_eq!(inflate(&twice, usize::MAX).unwrap().len(), 2 * text.len());
        let mut two = gz(b"{\"Records\":[", None);
        two.extend(gz(b"]}", None));
        assert_eq!(whole(&two), None);
        let mut after = one.clone();
        after.extend_from_slice(b"garbage!");
        assert_eq!(whole(&after), None);
        // A trailer that lies, a checksum that does not match, data cut or corrupt.
        for (at, flip) in [
            (one.len() - 1, 0x01),
            (one.len() - 8, 0x01),
            (one.len() / 2, 0x55),
        ] {
            let mut bad = one.clone();
            bad[at] ^= flip;
            assert_eq!(whole(&bad), None, "byte {at}");
        }
        assert_eq!(whole(&one[..one.len() - 9]), None);
        // Too large a text, or none, is not taken whole at all.
        let mut large = one.clone();
        let n = large.len();
        large[n - 4..].copy_from_slice(&u32::try_from(WHOLE_MAX + 1).unwrap().to_le_bytes());
        assert_eq!(whole_size(&large), None);
        assert_eq!(whole_size(&gz(b"", None)), None);
        assert_eq!(whole_size(b"ab"), None);
    }
}
