//! The structural pass's kernels: the masks of 64-byte blocks that the record splitter
//! ([`super::split`]) reads, once per instruction set: AVX-512BW (one compare gives the 64-bit
//! mask), AVX2 and SSE2, chosen at run time. The workspace forbids `unsafe`, so the dispatch
//! goes through `pulp`, whose tokens (`V4`, `V3`) exist only when the CPU has the features and
//! make the intrinsics safe to call; SSE2, the x86_64 baseline, goes through `wide`, which is
//! also the plain code elsewhere.
//!
//! Takes 64 bytes (fewer at the end of the text); gives a [`Block`] of masks, the same with every
//! instruction set as byte by byte (a test holds them together). Must never decide what the
//! bytes mean (strings, records, the file's grammar: that is the splitter's), nor read the
//! environment: a [`Simd`] request (the cli's `CONNECT_AUDIT_SIMD=sse2|avx2|avx512`) lowers the
//! choice (never above what the CPU has), for benchmarks, and for ruling the vector code out
//! when a result looks wrong.

// `#[inline(always)]` is how code reaches pulp's `vectorize`, the one function compiled with
// the set's features: anything it calls and does not inline runs without them.
#![allow(clippy::inline_always)]

use wide::u8x16;

/// The instruction set the structural pass is asked to use ([`ScanOptions::simd`]): never one
/// the CPU lacks (asked for one, the pass uses the best the CPU has). For benchmarks, and for
/// ruling the vector code out when a result looks wrong.
///
/// [`ScanOptions::simd`]: super::ScanOptions::simd
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Simd {
    /// The best set the CPU has.
    #[default]
    Best,
    /// AVX-512BW: `avx512`.
    Avx512,
    /// AVX2: `avx2`.
    Avx2,
    /// SSE2 (x86_64's baseline; plain code elsewhere): `sse2`.
    Sse2,
}

impl Simd {
    /// The set named `avx512`, `avx2` or `sse2`; `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "avx512" => Some(Self::Avx512),
            "avx2" => Some(Self::Avx2),
            "sse2" => Some(Self::Sse2),
            _ => None,
        }
    }
}

/// One bit per byte of a 64-byte block.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) quote: u64,
    pub(crate) backslash: u64,
    /// Bytes below 0x20.
    pub(crate) control: u64,
    /// `{`, `[`, `}` and `]`.
    pub(crate) brackets: u64,
    /// Some byte is 0x80 or above.
    pub(crate) non_ascii: bool,
}

/// Computes a [`Block`] from 64 bytes, with one instruction set.
pub(crate) trait Classify: Copy {
    fn of(self, bytes: &[u8; 64]) -> Block;

    /// The masks of the next 64 bytes of `text` (fewer at its end: the rest reads as spaces).
    #[inline(always)]
    fn read(self, text: &[u8]) -> Block {
        if let Some(bytes) = text.first_chunk::<64>() {
            self.of(bytes)
        } else {
            let mut bytes = [b' '; 64];
            bytes[..text.len()].copy_from_slice(text);
            self.of(&bytes)
        }
    }
}

/// Work that reads blocks, run with the instruction set [`Isa::run`] picks. Its `with` must be
/// `#[inline(always)]`, so that it is compiled with that set's features.
pub(crate) trait WithBlocks {
    type Output;
    fn with<C: Classify>(self, classify: C) -> Self::Output;
}

/// The instruction set the structural pass runs with. The x86_64 variants hold pulp's proof
/// that the CPU has the features.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512(pulp::x86::V4),
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
    /// SSE2 on x86_64 (its baseline); `wide`'s plain code elsewhere.
    Sse2,
}

impl Isa {
    /// The best set this CPU has, lowered to the `requested` one when the CPU has it.
    pub(crate) fn chosen(requested: Simd) -> Self {
        let available = Self::available();
        available
            .iter()
            .copied()
            .find(|isa| Simd::from_name(isa.name()) == Some(requested))
            .unwrap_or(available[0])
    }

    /// Every set this CPU has, best first (SSE2 always last).
    pub(crate) fn available() -> Vec<Self> {
        let mut sets = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            sets.extend(pulp::x86::V4::try_new().map(Self::Avx512));
            sets.extend(pulp::x86::V3::try_new().map(Self::Avx2));
        }
        sets.push(Self::Sse2);
        sets
    }

    /// Its name, as [`Simd::from_name`] reads it and logs show it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512(_) => "avx512",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(_) => "avx2",
            Self::Sse2 => "sse2",
        }
    }

    /// Runs `work` compiled for this set.
    #[inline]
    pub(crate) fn run<W: WithBlocks>(self, work: W) -> W::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512(simd) => simd.vectorize(
                #[inline(always)]
                || work.with(Avx512(simd)),
            ),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(simd) => simd.vectorize(
                #[inline(always)]
                || work.with(Avx2(simd)),
            ),
            Self::Sse2 => work.with(Sse2),
        }
    }
}

/// 16 bytes at a time with `wide` (SSE2 on x86_64).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sse2;

impl Classify for Sse2 {
    #[inline(always)]
    fn of(self, bytes: &[u8; 64]) -> Block {
        let lanes: [u8x16; 4] = std::array::from_fn(|k| {
            u8x16::new(bytes[16 * k..16 * k + 16].try_into().expect("16 bytes"))
        });
        let mask = |k: usize, m: u8x16| u64::from(m.to_bitmask()) << (16 * k);
        let mut block = Block::default();
        for (k, &v) in lanes.iter().enumerate() {
            block.quote |= mask(k, v.simd_eq(u8x16::splat(b'"')));
            block.backslash |= mask(k, v.simd_eq(u8x16::splat(b'\\')));
            // `[` | 0x20 is `{` and `]` | 0x20 is `}`; no other byte folds onto them.
            let folded = v | u8x16::splat(0x20);
            block.brackets |= mask(
                k,
                folded.simd_eq(u8x16::splat(b'{')) | folded.simd_eq(u8x16::splat(b'}')),
            );
        }
        block.non_ascii = (lanes[0] | lanes[1] | lanes[2] | lanes[3]).to_bitmask() != 0;
        // Control bytes are rare (CloudTrail writes one line): one test for the whole block
        // first, the mask only when there are some.
        let low = lanes[0].min(lanes[1]).min(lanes[2]).min(lanes[3]);
        let limit = u8x16::splat(0x1f);
        if low.min(limit).simd_eq(low).to_bitmask() != 0 {
            for (k, &v) in lanes.iter().enumerate() {
                block.control |= mask(k, v.min(limit).simd_eq(v));
            }
        }
        block
    }
}

/// 32 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(pulp::x86::V3);

#[cfg(target_arch = "x86_64")]
impl Classify for Avx2 {
    #[inline(always)]
    fn of(self, bytes: &[u8; 64]) -> Block {
        use core::arch::x86_64::__m256i;
        let Self(simd) = self;
        let (avx, avx2) = (simd.avx, simd.avx2);
        let halves: [__m256i; 2] = [
            bytemuck::pod_read_unaligned(&bytes[..32]),
            bytemuck::pod_read_unaligned(&bytes[32..]),
        ];
        let splat = |b: u8| avx._mm256_set1_epi8(b.cast_signed());
        let eq = |v, b: u8| avx2._mm256_cmpeq_epi8(v, splat(b));
        let mask = |k: u32, m| u64::from(avx2._mm256_movemask_epi8(m).cast_unsigned()) << (32 * k);
        let mut block = Block::default();
        for (k, v) in (0..).zip(halves) {
            block.quote |= mask(k, eq(v, b'"'));
            block.backslash |= mask(k, eq(v, b'\\'));
            // `[` | 0x20 is `{` and `]` | 0x20 is `}`, two apart: (folded - `{`) & !2 == 0.
            // (One compare: LLVM turns an OR of two compares into 64 single-bit moves.)
            let folded = avx2._mm256_or_si256(v, splat(0x20));
            let off = avx2._mm256_sub_epi8(folded, splat(b'{'));
            block.brackets |= mask(k, eq(avx2._mm256_and_si256(off, splat(!2)), 0));
        }
        block.non_ascii =
            avx2._mm256_movemask_epi8(avx2._mm256_or_si256(halves[0], halves[1])) != 0;
        // Below 0x20: min(v, 0x1f) == v. Rare: one test for the block, the mask only then.
        let limit = splat(0x1f);
        let below = |v| avx2._mm256_cmpeq_epi8(avx2._mm256_min_epu8(v, limit), v);
        if avx2._mm256_movemask_epi8(below(avx2._mm256_min_epu8(halves[0], halves[1]))) != 0 {
            for (k, v) in (0..).zip(halves) {
                block.control |= mask(k, below(v));
            }
        }
        block
    }
}

/// 64 bytes at a time, masks straight from the compares.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(pulp::x86::V4);

#[cfg(target_arch = "x86_64")]
impl Classify for Avx512 {
    #[inline(always)]
    fn of(self, bytes: &[u8; 64]) -> Block {
        use core::arch::x86_64::__m512i;
        let Self(simd) = self;
        let (f, bw) = (simd.avx512f, simd.avx512bw);
        let v: __m512i = bytemuck::pod_read_unaligned(bytes);
        let splat = |b: u8| f._mm512_set1_epi8(b.cast_signed());
        let folded = f._mm512_or_si512(v, splat(0x20));
        Block {
            quote: bw._mm512_cmpeq_epi8_mask(v, splat(b'"')),
            backslash: bw._mm512_cmpeq_epi8_mask(v, splat(b'\\')),
            control: bw._mm512_cmplt_epu8_mask(v, splat(0x20)),
            brackets: bw._mm512_cmpeq_epi8_mask(folded, splat(b'{'))
                | bw._mm512_cmpeq_epi8_mask(folded, splat(b'}')),
            non_ascii: bw._mm512_movepi8_mask(v) != 0,
        }
    }
}

/// The masks byte by byte: the reference every instruction set is tested against.
#[cfg(test)]
pub(crate) fn scalar(text: &[u8]) -> Block {
    let mut block = Block::default();
    for (i, &b) in text.iter().take(64).enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => block.quote |= bit,
            b'\\' => block.backslash |= bit,
            b'{' | b'[' | b'}' | b']' => block.brackets |= bit,
            0..0x20 => block.control |= bit,
            0x80.. => block.non_ascii = true,
            _ => {}
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Read<'a>(&'a [u8]);

    impl WithBlocks for Read<'_> {
        type Output = Block;
        #[inline(always)]
        fn with<C: Classify>(self, classify: C) -> Block {
            classify.read(self.0)
        }
    }

    #[test]
    fn every_instruction_set_gives_the_byte_by_byte_masks() {
        let sets = Isa::available();
        assert_eq!(sets.last().map(|s| s.name()), Some("sse2"));
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"\"\\{}[]:, ab\x00\x1f\x20\x7f\x80\xff\x5b\x5d\x7b\x7d\x3b\x3d\x0a";
        let mut cases: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                let len = rng.usize(0..=64);
                (0..len)
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            })
            .collect();
        let all: Vec<u8> = (0..=255).collect();
        cases.extend(all.chunks(64).map(<[u8]>::to_vec));
        for isa in sets {
            for bytes in &cases {
                let mut padded = bytes.clone();
                padded.resize(64, b' ');
                assert_eq!(isa.run(Read(bytes)), scalar(&padded), "{isa:?}: {bytes:?}");
            }
        }
    }

    #[test]
    fn the_choice_is_one_the_cpu_has() {
        let chosen = Isa::chosen(Simd::default()).name();
        assert!(Isa::available().iter().any(|isa| isa.name() == chosen));
    }
}
