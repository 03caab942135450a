//! Which side each arrival goes to: a seeded random permutation per balanced block, so that in
//! every block of `block` consecutive arrivals exactly half go to each side, in an order nobody
//! chose. Both sides thus see the same load shape at the same instants; no side is favoured by a
//! pattern in the schedule (every other arrival, the start of a phase).

use std::sync::Arc;

/// Side 0 is the baseline, side 1 the candidate.
pub const BASELINE: usize = 0;
pub const CANDIDATE: usize = 1;

#[derive(Debug, Clone, Copy)]
pub struct Assignment {
    seed: u64,
    block: u64,
}

impl Assignment {
    /// `block` is even and at least 2 (the plan checks).
    pub fn new(seed: u64, block: u32) -> Assignment {
        Assignment {
            seed,
            block: u64::from(block.max(2) & !1),
        }
    }

    /// The side of arrival `n`.
    pub fn side(&self, n: u64) -> usize {
        let b = n / self.block;
        let pos = n % self.block;
        // Fisher–Yates over [0; k] ++ [1; k], driven by a generator seeded with (seed, block);
        // only as far as position `pos` is needed.
        let mut rng = SplitMix(self.seed ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let half = self.block / 2;
        // Sides still to hand out in this block, drawn without replacement.
        let (mut zeros, mut ones) = (half, half);
        for i in 0..=pos {
            let left = zeros + ones;
            let pick = rng.next_u64() % left;
            let side = if pick < zeros { 0 } else { 1 };
            if i == pos {
                return side;
            }
            if side == 0 {
                zeros -= 1;
            } else {
                ones -= 1;
            }
        }
        unreachable_side()
    }

    /// As a shareable function for the load engine.
    pub fn router(self) -> Arc<dyn Fn(u64) -> usize + Send + Sync> {
        Arc::new(move |n| self.side(n))
    }
}

#[inline]
fn unreachable_side() -> usize {
    // The loop above returns at `i == pos`; this is never reached.
    CANDIDATE
}

/// SplitMix64: small, fast and well mixed; enough for an assignment nobody can predict from the
/// schedule.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_is_balanced_and_the_order_varies() {
        let a = Assignment::new(7, 8);
        let mut patterns = std::collections::BTreeSet::new();
        for b in 0..200u64 {
            let sides: Vec<usize> = (0..8).map(|i| a.side(b * 8 + i)).collect();
            assert_eq!(sides.iter().filter(|&&s| s == 1).count(), 4, "{sides:?}");
            patterns.insert(sides);
        }
        assert!(patterns.len() > 30, "{} distinct orders", patterns.len());
    }

    #[test]
    fn the_seed_decides() {
        let (a, b) = (Assignment::new(1, 8), Assignment::new(2, 8));
        let sa: Vec<usize> = (0..64).map(|n| a.side(n)).collect();
        let sb: Vec<usize> = (0..64).map(|n| b.side(n)).collect();
        assert_ne!(sa, sb);
        assert_eq!(sa, (0..64).map(|n| a.side(n)).collect::<Vec<_>>());
    }
}
