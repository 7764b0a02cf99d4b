//! The AVX2 kernel of the literal search: eight windows hashed and tested per instruction.
//!
//! Role: [`scan_blocks`] finds the blocks of 32 positions where the filter has a bit set
//! for some window, for a stride of 1, 2 or 4. The scalar loop in `mod.rs` is the reference and
//! the fallback (CPUs without AVX2, the last bytes of a buffer).
//! Invariants: reads stay inside `hay` (bounds written in each `// SAFETY:` comment); the lanes
//! returned are not in position order for strides 1 and 2 (lane bit `8*j + i` is the window at
//! `q + j*S + 4*i`): the caller visits a block's hit windows left to right. This and `sys` are the only rooms with `unsafe`.
//! Rejected alternative: `std::simd` (nightly only).
use std::arch::x86_64::*;

use super::{Blocks, BLOCKS};

/// Fetch the cache line of `x` ahead of its use (`_mm_prefetch`, SSE: every x86_64 CPU has it).
#[inline(always)]
pub(super) fn prefetch<T>(x: &T) {
    // SAFETY: SSE is part of x86_64's baseline; a prefetch reads nothing and never faults.
    unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>()) };
}

/// `LitScan::look_up_batch` with POPCNT (a bucket is found by the rank of its filter bit: one
/// instruction instead of a dozen for the baseline's count of ones).
///
/// # Safety
/// The CPU must have POPCNT (every CPU with AVX2 has it).
#[target_feature(enable = "popcnt")]
pub(super) unsafe fn look_up_batch(s: &super::LitScan, batch: &mut super::Batch, n: usize) {
    s.look_up_batch(batch, n);
}

/// See `LitScan::scan_blocks`. The filter's u64 words are read as little-endian u32 words
/// (bit `h` is bit `h % 32` of u32 word `h / 32`, as it is bit `h % 64` of u64 word `h / 64`).
///
/// # Safety
/// The CPU must have AVX2, and `shift` must be `32 - log2(filter bits)`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn scan_blocks<const S: usize>(
    filter: &[u64],
    (mask, shift): (u32, u32),
    hay: &[u8],
    mut q: usize,
    last: usize,
    out: &mut Blocks,
) -> usize {
    let vmask = _mm256_set1_epi32(mask as i32);
    let mul = _mm256_set1_epi32(0x9E37_79B1_u32 as i32);
    let count = _mm_cvtsi32_si128(shift as i32);
    let low5 = _mm256_set1_epi32(31);
    let words = filter.as_ptr().cast::<i32>();
    // The windows at q + j*S + 4*i for j < 4/S and i < 8: every S-th window of the block.
    let loads = 4 / S;
    out.len = 0;
    // PERF: 32 bytes a round: eight 4-byte windows hashed in one multiply, their filter words
    // fetched with one gather, per load (rules100, search alone: scalar 1.5 GB/s, AVX2 see
    // PERF.md). Every block is written and counted only when a window passed: no branch on
    // it (Debian's 2,101 rules pass a window every ~50 bytes: one block in two, a branch
    // the CPU cannot predict).
    while out.len < BLOCKS && q + 36 <= hay.len() && q + 32 - S <= last {
        let mut lanes = 0u32;
        for j in 0..loads {
            // SAFETY: q + j*S + 32 <= q + 35 < hay.len(): the 32 bytes read are in `hay`.
            let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(q + j * S).cast()) };
            let h = _mm256_srl_epi32(_mm256_mullo_epi32(_mm256_and_si256(v, vmask), mul), count);
            // SAFETY: h < 2^(32 - shift) = the filter's bit count, so h / 32 indexes one
            // of its u32 words.
            let w = unsafe { _mm256_i32gather_epi32::<4>(words, _mm256_srli_epi32::<5>(h)) };
            // The tested bit moved to each lane's sign, gathered as 8 mask bits.
            let bit = _mm256_slli_epi32::<31>(_mm256_srlv_epi32(w, _mm256_and_si256(h, low5)));
            lanes |= (_mm256_movemask_ps(_mm256_castsi256_ps(bit)) as u32) << (8 * j);
        }
        if let (Some(a), Some(l)) = (out.at.get_mut(out.len), out.lanes.get_mut(out.len)) {
            *a = q;
            *l = lanes;
        }
        out.len += usize::from(lanes != 0);
        q += 32;
    }
    q
}

/// See `Teddy`: from window start `q`, in steps of 32 window starts (all at or before `last`),
/// the steps where some window passes the tables of a group, into `out` (at most [`BLOCKS`]:
/// each step's first start, and lane bits: bit `j` is the window at `start + j`); returns the
/// next step's start. Fewer than [`BLOCKS`]: the steps ended there (the first start of 32 that
/// would pass `last`). Windows are 3 bytes.
///
/// # Safety
/// The CPU must have AVX2; `last + 3 <= hay.len()`; `q >= 30`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn scan_teddy_blocks(
    lo: &[[u8; 16]; 3],
    hi: &[[u8; 16]; 3],
    hay: &[u8],
    mut q: usize,
    last: usize,
    out: &mut Blocks,
) -> usize {
    // PERF: 32 bytes a step, each byte's nibbles looked up once per window position (the
    // tables in both 128-bit lanes); the results for positions 0 and 1 are shifted in by 2
    // and 1 bytes from the 16 bytes before each lane (`vperm2i128` then `vpalignr`), so that
    // byte e holds the verdict on the window ending at e. Half the vector instructions of
    // 16-byte steps: rules10's search alone 4.8 → 5.3 GB/s (PERF.md "forty-first run").
    let nib = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    // SAFETY (both): each table is 16 bytes.
    let los: [__m256i; 3] = std::array::from_fn(|k| {
        _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(lo[k].as_ptr().cast()) })
    });
    let his: [__m256i; 3] = std::array::from_fn(|k| {
        _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(hi[k].as_ptr().cast()) })
    });
    // The groups allowing each of the 32 bytes at `p` at each window position.
    let step = |p: usize| -> [__m256i; 3] {
        // SAFETY: callers pass p + 32 <= hay.len() (bounds at each call).
        let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(p).cast()) };
        let l = _mm256_and_si256(v, nib);
        let h = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib);
        std::array::from_fn(|k| {
            _mm256_and_si256(
                _mm256_shuffle_epi8(los[k], l),
                _mm256_shuffle_epi8(his[k], h),
            )
        })
    };
    // Byte e of the result: the groups whose window ending at e passes. Each lane's 16 bytes
    // before it: the upper lane of `prev` for the lower lane, the lower lane of `cur` for the
    // upper one.
    let ends = |cur: &[__m256i; 3], prev: &[__m256i; 3]| -> __m256i {
        let before0 = _mm256_permute2x128_si256::<0x21>(prev[0], cur[0]);
        let before1 = _mm256_permute2x128_si256::<0x21>(prev[1], cur[1]);
        let first = _mm256_alignr_epi8::<14>(cur[0], before0);
        let second = _mm256_alignr_epi8::<15>(cur[1], before1);
        _mm256_and_si256(cur[2], _mm256_and_si256(first, second))
    };
    let lanes = |v: __m256i| !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero)) as u32);
    out.len = 0;
    if q + 31 > last {
        return q;
    }
    // The window starting at q ends at q + 2: each step reads from there; the step 32 bytes
    // before it gives the bytes shifted in (its last two are q and q + 1).
    // SAFETY: q + 2 >= 32, and q + 2 + 32 <= last + 3 <= hay.len().
    let mut prev = step(q + 2 - 32);
    // PERF: every block written, counted only when a window passed (see `scan_blocks`).
    while out.len < BLOCKS && q + 31 <= last {
        // SAFETY: q + 2 + 32 <= last + 3 <= hay.len().
        let cur = step(q + 2);
        let found = lanes(ends(&cur, &prev));
        if let (Some(a), Some(l)) = (out.at.get_mut(out.len), out.lanes.get_mut(out.len)) {
            *a = q;
            *l = found;
        }
        out.len += usize::from(found != 0);
        prev = cur;
        q += 32;
    }
    q
}

/// See `ClassScan::find`: from frame position `q`, the first block of 32 frame positions
/// where some window's classes all hold, as (block start, lane bits: bit `j` is frame
/// position `start + j`), and in `each[w]` the lanes where window `w`'s classes all hold (0 for
/// the others); `(q', 0)` when none does before `q'`, where fewer than
/// `32 + frame - 1` bytes are left. Window `w`'s classes are the tests `order[t..t + widths[w]]`
/// (indices into `tests` and `places`, with [`SHARED`] set on a test that other windows have
/// too); test `k` holds at frame position `f` when `hay[f + places[k]]` is in its class. When
/// `gated`, every window starts with test 0. `SHARING`: whether any test is marked; when not,
/// `order` must be `0..order.len()` (PERF: a single window's search without the bookkeeping
/// and the indirection, as before sharing, ran 17 % faster). Each block is first looked at
/// through `sieve` (`PLACES` = its count, at most `SIEVE_PLACES`), and left when no frame
/// position passes.
///
/// # Safety
/// The CPU must have AVX2; `widths` must sum to `order.len()`, every index of `order` (without
/// [`SHARED`]) must be below `tests.len()` (= `places.len()`) and, when [`SHARED`] is set, below
/// [`KEPT`]; every place (the sieve's too) must be below `frame`; at most `MAX_WINDOWS`
/// windows.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn next_class_block<const SHARING: bool, const PLACES: usize>(
    sieve: &super::classes::Sieve,
    tests: &[super::classes::Nibbles],
    places: &[usize],
    order: &[u8],
    widths: &[usize],
    gated: bool,
    frame: usize,
    hay: &[u8],
    mut q: usize,
    each: &mut [u32; super::classes::MAX_WINDOWS],
) -> (usize, u32) {
    let nib = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    // PERF: the tables are broadcast from memory where used (one `vbroadcasti128` each, from
    // L1): copying them to registers first cost a 4 KiB stack fill per call, and a call is
    // made per candidate line. The verdicts kept are not initialised for the same reason.
    let table = |t: &[u8; 16]| {
        // SAFETY: `t` is 16 bytes.
        _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(t.as_ptr().cast()) })
    };
    // The lanes where test k misses at the block starting at q.
    let miss = |k: usize, q: usize| {
        // SAFETY: k < tests.len() = places.len() (this function's contract, for every index
        // of `order` and for 0 when `gated`).
        let (test, i) = unsafe { (tests.get_unchecked(k), *places.get_unchecked(k)) };
        // SAFETY: i < frame, and callers keep q + frame - 1 + 32 <= hay.len().
        let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(q + i).cast()) };
        let l = _mm256_shuffle_epi8(table(&test.lo), _mm256_and_si256(v, nib));
        let h = _mm256_shuffle_epi8(
            table(&test.hi),
            _mm256_and_si256(_mm256_srli_epi16(v, 4), nib),
        );
        _mm256_cmpeq_epi8(_mm256_and_si256(l, h), zero)
    };
    let mut kept = [std::mem::MaybeUninit::<__m256i>::uninit(); KEPT];
    // The sieve's tables in registers for the whole call (six of them).
    let sieve_tables: [(__m256i, __m256i); super::classes::SIEVE_PLACES] =
        std::array::from_fn(|i| (table(&sieve.lo[i]), table(&sieve.hi[i])));
    while q + 32 + frame - 1 <= hay.len() {
        // PERF: many windows with different rarest classes (sagan-rules' `\snc`, `netc`,
        // `p:/`, `;[0-9]`, `?`) cost a test each per block, and a window whose rarest class
        // is common (Debian's `\s[+-]\d{4}`: `[+-]` in 30 % of loghub's blocks) two or three,
        // each with its tables read again; the sieve leaves most blocks after at most three
        // tests, its tables in registers, however many windows there are (PERF.md "fortieth
        // run").
        let alive = {
            let mut bits = _mm256_cmpeq_epi8(zero, zero);
            // PERF: `PLACES` (the sieve's count) known when compiled: the loop is unrolled, the
            // places are constants of the call (a loop to a count read from the sieve was ~4 %
            // of the mixed bench set's matching instructions).
            for (&(lo, hi), &at) in sieve_tables.iter().zip(&sieve.places).take(PLACES) {
                // SAFETY: the sieve's places are below `frame` (`Sieve::new`), and callers
                // keep q + frame - 1 + 32 <= hay.len().
                let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(q + at).cast()) };
                let l = _mm256_shuffle_epi8(lo, _mm256_and_si256(v, nib));
                let h = _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
                bits = _mm256_and_si256(bits, _mm256_and_si256(l, h));
            }
            if _mm256_testz_si256(bits, bits) != 0 {
                q += 32;
                continue;
            }
            // The buckets (windows) that passed at some position of the block: the others'
            // full tests are not made. PERF: the mixed set's four windows, matching
            // instructions -3.4 %; not computed for a lone window, which has nothing to skip
            // (it cost the upper-case identifier 4 %).
            if widths.len() == 1 {
                u8::MAX
            } else {
                let x = _mm_or_si128(
                    _mm256_castsi256_si128(bits),
                    _mm256_extracti128_si256::<1>(bits),
                );
                let x = _mm_or_si128(x, _mm_srli_si128::<8>(x));
                let x = _mm_or_si128(x, _mm_srli_si128::<4>(x));
                let x = _mm_or_si128(x, _mm_srli_si128::<2>(x));
                let x = _mm_or_si128(x, _mm_srli_si128::<1>(x));
                _mm_cvtsi128_si32(x) as u8
            }
        };
        let mut done = 0u64;
        // PERF: windows aligned at a rarest class they share (one rule's alternatives:
        // `[0-9]{1,3}\.[0-9]{1,3}:[0-9]+`'s three windows at their `:`) leave a block after
        // that one test when it holds nowhere, as most blocks do.
        if SHARING && gated {
            let m = miss(0, q);
            if _mm256_movemask_epi8(m) == -1 {
                q += 32;
                continue;
            }
            kept[0].write(m);
            done = 1;
        }
        let mut lanes = 0u32;
        let mut t = 0;
        for (i, &w) in widths.iter().enumerate() {
            if alive >> (i % 8) & 1 == 0 {
                // SAFETY (here and below): i < widths.len() <= MAX_WINDOWS (the contract).
                unsafe { *each.get_unchecked_mut(i) = 0 };
                t += w;
                continue;
            }
            // A lane stays all-ones while every class of the window holds at its position.
            let mut all = _mm256_cmpeq_epi8(zero, zero);
            for j in t..t + w {
                // Without sharing, test j is the window's j-th class (`ClassScan::build`
                // numbers the tests in order when none repeats).
                let (shared, k) = if SHARING {
                    // SAFETY: j < order.len() (the widths sum to it).
                    let k = unsafe { *order.get_unchecked(j) };
                    (k & SHARED != 0, usize::from(k & !SHARED))
                } else {
                    (false, j)
                };
                // A test other windows have is computed once a block.
                let m = if shared && done >> k & 1 == 1 {
                    // SAFETY: written in this block (bit k of `done`).
                    unsafe { kept[k].assume_init() }
                } else {
                    let m = miss(k, q);
                    if shared {
                        kept[k].write(m);
                        done |= 1 << k;
                    }
                    m
                };
                all = _mm256_andnot_si256(m, all);
                // PERF: most blocks hold the window's rarest class nowhere: leave at once.
                if _mm256_testz_si256(all, all) != 0 {
                    break;
                }
            }
            // PERF: each window's lanes, so the caller knows where a window starts without
            // checking every window at every place the lanes could mean one by one (that
            // scalar check was 8 % of the mixed bench set's matching instructions).
            let m = _mm256_movemask_epi8(all) as u32;
            unsafe { *each.get_unchecked_mut(i) = m };
            lanes |= m;
            t += w;
        }
        if lanes != 0 {
            return (q, lanes);
        }
        q += 32;
    }
    (q, 0)
}

/// The flag of a test in [`next_class_block`]'s `order` that more than one window has.
pub(super) const SHARED: u8 = 0x80;

/// Tests whose verdict [`next_class_block`] keeps for the other windows of a block.
pub(super) const KEPT: usize = 64;

/// How far [`find_newline`] and [`rfind_newline`] look themselves before they hand over to
/// memchr (which is faster over long stretches, slower to call for a short line).
const SHORT: usize = 256;

/// The first `\n` in `hay`. PERF: inline, 16 bytes a step with SSE2 (every x86_64 CPU has
/// it) over the first [`SHORT`] bytes: a storm's lines are found one by one, and memchr's
/// three calls per line (dispatch, AVX2 kernel, its short-haystack path) were 15 % of the
/// reader's samples.
#[inline(always)]
pub(crate) fn find_newline(hay: &[u8]) -> Option<usize> {
    // SAFETY (every intrinsic here): SSE2 is part of the x86_64 baseline.
    let nl = unsafe { _mm_set1_epi8(b'\n' as i8) };
    let mut i = 0;
    let short = hay.len().min(SHORT);
    while i + 16 <= short {
        // SAFETY: i + 16 <= hay.len(): the 16 bytes read are in `hay`.
        let v = unsafe { _mm_loadu_si128(hay.as_ptr().add(i).cast()) };
        let m = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) } as u32;
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    memchr::memchr(b'\n', hay.get(i..)?).map(|k| i + k)
}

/// The first place `needle` (not empty) starts in `hay`, looked for among the first
/// [`SHORT`] places only: `Err(i)` when it starts at none of the places before `i`.
#[inline(always)]
pub(crate) fn find_literal_near(hay: &[u8], needle: &[u8]) -> Result<usize, usize> {
    let (Some(&first), Some(&last)) = (needle.first(), needle.last()) else {
        return Err(0);
    };
    let n = needle.len();
    // SAFETY (every intrinsic here): SSE2 is part of the x86_64 baseline.
    let (f, l) = unsafe { (_mm_set1_epi8(first as i8), _mm_set1_epi8(last as i8)) };
    let mut i = 0;
    while i < SHORT && i + n - 1 + 16 <= hay.len() {
        // SAFETY: i + n - 1 + 16 <= hay.len(): both 16-byte reads are in `hay`.
        let (a, b) = unsafe {
            (
                _mm_loadu_si128(hay.as_ptr().add(i).cast()),
                _mm_loadu_si128(hay.as_ptr().add(i + n - 1).cast()),
            )
        };
        let mut m =
            unsafe { _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, f), _mm_cmpeq_epi8(b, l))) }
                as u32;
        while m != 0 {
            let at = i + m.trailing_zeros() as usize;
            if hay[at..].starts_with(needle) {
                return Ok(at);
            }
            m &= m - 1;
        }
        i += 16;
    }
    Err(i)
}

/// The last `\n` in `hay` (see [`find_newline`]).
#[inline(always)]
pub(crate) fn rfind_newline(hay: &[u8]) -> Option<usize> {
    // SAFETY (every intrinsic here): SSE2 is part of the x86_64 baseline.
    let nl = unsafe { _mm_set1_epi8(b'\n' as i8) };
    let mut end = hay.len();
    let stop = hay.len().saturating_sub(SHORT);
    while end >= 16 && end - 16 >= stop {
        // SAFETY: end <= hay.len() and end >= 16: the 16 bytes read are in `hay`.
        let v = unsafe { _mm_loadu_si128(hay.as_ptr().add(end - 16).cast()) };
        let m = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) } as u32;
        if m != 0 {
            return Some(end - 16 + (31 - m.leading_zeros()) as usize);
        }
        end -= 16;
    }
    memchr::memrchr(b'\n', hay.get(..end)?)
}
