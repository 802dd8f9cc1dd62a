//! The statistics behind drift verdicts on repeated runs: Mann-Whitney U with exact p-values
//! (ties included) for counts and tokens, Fisher's exact test for stop-reason shares, and
//! Holm / Benjamini-Hochberg corrections for testing many tasks × metrics at once.
//!
//! Written by hand and checked against published values (see the tests): two fully separated
//! groups of five give an exact two-sided Mann-Whitney p of 2/252 = 0.0079.

use serde::Serialize;

/// When more than this many arrangements exist, the exact test gives way to the normal
/// approximation (with tie correction and continuity correction).
const EXACT_LIMIT: f64 = 2.0e6;

/// A Mann-Whitney U test of two samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of the first sample: how often one of its values beats one of the second's (ties
    /// count half).
    pub u: f64,
    /// The two-sided p-value.
    pub p: f64,
    /// Cliff's delta, the effect size from -1 (the second is always larger) to 1.
    pub effect: f64,
    /// Whether `p` is exact (all arrangements counted) or approximate.
    pub exact: bool,
}

/// Ranks with ties sharing their mean rank (1-based), and the tie term Σ(t³ − t) over the
/// groups of `t` tied values (for the variance of the normal approximation).
fn midranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            ranks[*k] = rank;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    (ranks, tie_term)
}

/// `n` choose `k`, as a float.
pub fn choose(n: usize, k: usize) -> f64 {
    let k = k.min(n - k.min(n));
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Mann-Whitney U of `a` against `b`, two-sided. `None` when a sample is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let (ranks, tie_term) = midranks(&all);
    let r1: f64 = ranks[..n1].iter().sum();
    let u = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let mean = (n1 * n2) as f64 / 2.0;
    let effect = 2.0 * u / (n1 * n2) as f64 - 1.0;
    if choose(n1 + n2, n1) <= EXACT_LIMIT {
        // Every way of choosing which n1 of the pooled ranks belong to the first sample is
        // equally likely under the null: count those at least as far from the mean as `u`.
        // Ranks are doubled to stay integral with half ranks.
        let doubled: Vec<usize> = ranks.iter().map(|r| (r * 2.0).round() as usize).collect();
        let max_sum: usize = doubled.iter().sum();
        // ways[k][s]: number of k-subsets with doubled rank sum s.
        let mut ways = vec![vec![0.0f64; max_sum + 1]; n1 + 1];
        ways[0][0] = 1.0;
        for &r in &doubled {
            for k in (1..=n1).rev() {
                for s in (r..=max_sum).rev() {
                    let add = ways[k - 1][s - r];
                    if add != 0.0 {
                        ways[k][s] += add;
                    }
                }
            }
        }
        let total: f64 = ways[n1].iter().sum();
        let offset = (n1 * (n1 + 1)) as f64; // doubled n1(n1+1)/2
        let observed = (u - mean).abs();
        let extreme: f64 = ways[n1]
            .iter()
            .enumerate()
            .filter(|(s, w)| {
                **w != 0.0 && ((*s as f64 - offset) / 2.0 - mean).abs() >= observed - 1e-9
            })
            .map(|(_, w)| *w)
            .sum();
        return Some(MannWhitney {
            u,
            p: (extreme / total).min(1.0),
            effect,
            exact: true,
        });
    }
    // Normal approximation with the tie correction of the variance.
    let n = (n1 + n2) as f64;
    let variance = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let p = if variance <= 0.0 {
        1.0
    } else {
        let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
        (2.0 * normal_upper_tail(z)).min(1.0)
    };
    Some(MannWhitney {
        u,
        p,
        effect,
        exact: false,
    })
}

/// P(Z > z) for a standard normal Z (Abramowitz–Stegun 7.1.26 via erfc; error < 1.5e-7).
fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    erfc / 2.0
}

/// The smallest exact two-sided p-value a Mann-Whitney test of two samples of `n` can reach:
/// both arrangements where one sample is entirely above the other.
pub fn min_p_value(n: usize) -> f64 {
    2.0 / choose(2 * n, n)
}

/// The smallest number of runs per side for which a Mann-Whitney test can reach `alpha` after
/// a Bonferroni-strength correction over `tests` tests (Holm's first step), at most 1,000.
pub fn smallest_n(alpha: f64, tests: usize) -> Option<usize> {
    let level = alpha / tests.max(1) as f64;
    (1..=1000).find(|n| min_p_value(*n) <= level)
}

/// Fisher's exact test of a 2×2 table `[[a, b], [c, d]]` (rows: baseline, candidate;
/// columns: has the property, has not), two-sided: the probability of every table with the
/// same margins no more likely than the observed one.
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let (row1, col1, n) = (a + b, a + c, a + b + c + d);
    let lo = col1.saturating_sub(c + d);
    let hi = col1.min(row1);
    let log_choose =
        |n: u64, k: u64| -> f64 { ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k) };
    let prob = |x: u64| -> f64 {
        (log_choose(row1, x) + log_choose(n - row1, col1 - x) - log_choose(n, col1)).exp()
    };
    let observed = prob(a);
    (lo..=hi)
        .map(prob)
        .filter(|p| *p <= observed * (1.0 + 1e-7))
        .sum::<f64>()
        .min(1.0)
}

fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

/// Holm's step-down adjusted p-values (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini-Hochberg adjusted p-values (false discovery rate), in the input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 1.0;
    for (k, &i) in order.iter().enumerate() {
        let rank = m - k; // 1-based rank of p[i] in ascending order
        running = running.min(p[i] * m as f64 / rank as f64);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn separated_groups_of_five_give_the_published_exact_p() {
        let mw =
            mann_whitney(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]).expect("test");
        assert!(mw.exact);
        assert_eq!(mw.u, 0.0);
        assert!(close(mw.p, 2.0 / 252.0, 1e-12), "{}", mw.p);
        assert!(close(mw.p, 0.0079, 5e-5));
        assert_eq!(mw.effect, -1.0);
        // The same whichever sample is larger or first.
        let mw =
            mann_whitney(&[6.0, 7.0, 8.0, 9.0, 10.0], &[1.0, 2.0, 3.0, 4.0, 5.0]).expect("test");
        assert!(close(mw.p, 2.0 / 252.0, 1e-12));
        // Unequal sizes: 3 vs 7 fully separated, p = 2 / C(10, 3) = 2/120.
        let mw =
            mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]).expect("test");
        assert!(close(mw.p, 2.0 / 120.0, 1e-12), "{}", mw.p);
    }

    #[test]
    fn a_table_value_matches() {
        // n1 = n2 = 4, U = 1: P(U <= 1) = 2/70, two-sided 4/70 = 0.0571 (standard tables).
        let mw = mann_whitney(&[1.0, 2.0, 2.5, 4.0], &[3.0, 5.0, 6.0, 7.0]).expect("test");
        assert_eq!(mw.u, 1.0);
        assert!(close(mw.p, 4.0 / 70.0, 1e-12), "{}", mw.p);
    }

    #[test]
    fn identical_samples_are_not_significant() {
        let mw = mann_whitney(&[3.0; 6], &[3.0; 6]).expect("test");
        assert!(close(mw.p, 1.0, 1e-12), "{}", mw.p);
        assert_eq!(mw.effect, 0.0);
    }

    #[test]
    fn ties_use_midranks_and_the_exact_distribution() {
        // Every baseline run made 3 calls, every candidate 4: as separated as it gets.
        let mw = mann_whitney(&[3.0; 5], &[4.0; 5]).expect("test");
        assert!(close(mw.p, 2.0 / 252.0, 1e-12), "{}", mw.p);
    }

    #[test]
    fn large_samples_use_the_normal_approximation() {
        let a: Vec<f64> = (0..40).map(f64::from).collect();
        let b: Vec<f64> = (20..60).map(f64::from).collect();
        let mw = mann_whitney(&a, &b).expect("test");
        assert!(!mw.exact);
        assert!(mw.p < 1e-4 && mw.p > 0.0, "{}", mw.p);
    }

    #[test]
    fn the_normal_approximation_corrects_for_ties() {
        // Groups of four tied values; p as the tie-corrected variance gives it (pinned).
        let a: Vec<f64> = (0..40).map(|i| f64::from(i / 4)).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from(i / 4 + 2)).collect();
        let mw = mann_whitney(&a, &b).expect("test");
        assert!(!mw.exact);
        assert_eq!(mw.u, 512.0);
        assert!(close(mw.p, 0.005_468_131_796_54, 1e-12), "{}", mw.p);
    }

    #[test]
    fn smallest_n_reaches_the_level() {
        assert_eq!(smallest_n(0.05, 1), Some(4)); // 2/70 = 0.029; n = 3 gives 0.1
        assert!(min_p_value(3) > 0.05);
        assert_eq!(smallest_n(0.05, 10), Some(6)); // 0.005: 2/924 = 0.0022; n = 5: 0.0079
    }

    #[test]
    fn fisher_matches_the_tea_tasting_example() {
        // Fisher's lady tasting tea: 3 of 4 right, two-sided p = 0.4857.
        assert!(close(fisher_exact(3, 1, 1, 3), 0.485_714, 1e-5));
        // All ok against all stopped, 5 runs each: 2 / C(10, 5) = 0.0079.
        assert!(close(fisher_exact(5, 0, 0, 5), 2.0 / 252.0, 1e-9));
        assert!(close(fisher_exact(2, 2, 2, 2), 1.0, 1e-9));
    }

    #[test]
    fn corrections_match_hand_computed_values() {
        let p = [0.01, 0.04, 0.03, 0.005];
        let h = holm(&p);
        assert!(close(h[3], 0.02, 1e-12) && close(h[0], 0.03, 1e-12));
        assert!(close(h[2], 0.06, 1e-12) && close(h[1], 0.06, 1e-12));
        let bh = benjamini_hochberg(&p);
        assert!(close(bh[3], 0.02, 1e-12) && close(bh[0], 0.02, 1e-12));
        assert!(close(bh[2], 0.04, 1e-12) && close(bh[1], 0.04, 1e-12));
    }
}
