//! The ranges an agent version's numbers must lie in ([`Bounds`], one constant a field) and
//! the deserializers that check each number where the parser reads it (`checked`), so the
//! error carries the value's own file:line:column.

use std::time::Duration;

/// One year, in seconds: the longest `budgets.max_seconds` and `dedupe.read_window_s`.
pub const ONE_YEAR_S: f64 = 31_536_000.0;

/// One day, in seconds: the longest tool `timeout_s`.
pub const ONE_DAY_S: f64 = 86_400.0;

/// Where one number of an agent version may lie. Every bound is written once, below; the
/// parser checks it as it reads the value (so `config check`, `run`, `golden` and
/// `replay --agent` refuse the same values, with file:line:column), and the error quotes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// The field, as the error names it (the YAML parser puts the path before it).
    pub field: &'static str,
    /// What the value must be: `a finite number of seconds`, `a whole number`.
    pub what: &'static str,
    /// The range in words, after `what`: `in 0 < x <= 31536000 (one year)`.
    pub range: &'static str,
    /// The smallest value.
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub min_inclusive: bool,
    /// The largest value allowed (`f64::MAX` for no limit but finiteness).
    pub max: f64,
    /// Whole numbers only (a `u64` field).
    pub whole: bool,
}

impl Bounds {
    /// A finite number in `min..=max` (`min` excluded unless `min_inclusive`).
    const fn real(
        field: &'static str,
        what: &'static str,
        range: &'static str,
        (min, min_inclusive): (f64, bool),
        max: f64,
    ) -> Self {
        Self {
            field,
            what,
            range,
            min,
            min_inclusive,
            max,
            whole: false,
        }
    }

    /// A whole number of at least `min`.
    const fn whole(field: &'static str, min: u64, range: &'static str) -> Self {
        Self {
            field,
            what: "a whole number",
            range,
            min: min as f64,
            min_inclusive: true,
            max: f64::MAX,
            whole: true,
        }
    }

    /// Whether `x` is allowed.
    pub fn contains(&self, x: f64) -> bool {
        let above_min = if self.min_inclusive {
            x >= self.min
        } else {
            x > self.min
        };
        // A whole number must also fit a u64 (2^64 and above would saturate).
        let whole = x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0;
        x.is_finite() && above_min && x <= self.max && (!self.whole || whole)
    }

    /// The error for a value out of range: `max_seconds must be … in 0 < x <= …, got 1e300`.
    fn refusal(&self, got: &str) -> String {
        format!(
            "{} must be {} {}, got {got}",
            self.field, self.what, self.range
        )
    }

    /// Seconds as a duration that cannot panic: a value outside the range (possible only in
    /// a config built in code) is brought into it first.
    pub(crate) fn duration(&self, seconds: f64) -> Duration {
        let seconds = if seconds.is_nan() {
            self.min
        } else {
            seconds.clamp(self.min, self.max)
        };
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO)
    }
}

/// `budgets.max_steps`: 0 would stop every run before its first step.
pub const MAX_STEPS: Bounds = Bounds::whole("max_steps", 1, ">= 1");
/// `budgets.max_tool_calls`: 0 is allowed, an agent that may answer but call no tool.
pub const MAX_TOOL_CALLS: Bounds = Bounds::whole("max_tool_calls", 0, ">= 0");
/// `budgets.max_tokens`: 0 would stop every run before its first step.
pub const MAX_TOKENS: Bounds = Bounds::whole("max_tokens", 1, ">= 1");
/// `budgets.max_seconds`: the run's deadline, at most a year away.
pub const MAX_SECONDS: Bounds = Bounds::real(
    "max_seconds",
    "a finite number of seconds",
    "in 0 < x <= 31536000 (one year)",
    (0.0, false),
    ONE_YEAR_S,
);
/// `budgets.max_usd`: 0 would stop every run before its first step (the budget is spent when
/// the cost so far reaches it).
pub const MAX_USD: Bounds = Bounds::real(
    "max_usd",
    "a finite number of US dollars",
    "> 0",
    (0.0, false),
    f64::MAX,
);
/// A tool's `timeout_s`: at most a day.
pub const TIMEOUT_S: Bounds = Bounds::real(
    "timeout_s",
    "a finite number of seconds",
    "in 0 < x <= 86400 (one day)",
    (0.0, false),
    ONE_DAY_S,
);
/// A tool's `cost_usd`: at most a million dollars a call (larger is a typo, and would make
/// run totals overflow to infinity, which JSON cannot hold).
pub const COST_USD: Bounds = Bounds::real(
    "cost_usd",
    "a finite number of US dollars",
    "in 0 <= x <= 1000000",
    (0.0, true),
    1_000_000.0,
);
/// A mock answer's `latency_ms`: at most a day.
pub const LATENCY_MS: Bounds = Bounds {
    max: ONE_DAY_S * 1000.0,
    ..Bounds::whole("latency_ms", 0, "in 0 <= x <= 86400000 (one day)")
};
/// `dedupe.read_window_s`: 0 turns deduplication off; at most a year.
pub const READ_WINDOW_S: Bounds = Bounds::real(
    "read_window_s",
    "a finite number of seconds",
    "in 0 <= x <= 31536000 (one year)",
    (0.0, true),
    ONE_YEAR_S,
);
/// A price's `input_per_mtok` (the agent's `pricing`, and `record --pricing FILE`): at most a
/// million dollars per million tokens, for the same reason.
pub const INPUT_PER_MTOK: Bounds = Bounds::real(
    "input_per_mtok",
    "a finite number of US dollars per million tokens",
    "in 0 <= x <= 1000000",
    (0.0, true),
    1_000_000.0,
);
/// A price's `output_per_mtok`.
pub const OUTPUT_PER_MTOK: Bounds = Bounds {
    field: "output_per_mtok",
    ..INPUT_PER_MTOK
};
/// `model.temperature`: the widest range a provider accepts (OpenAI 0 to 2; Anthropic 0 to 1,
/// which its API enforces itself).
pub const TEMPERATURE: Bounds = Bounds::real(
    "temperature",
    "a finite number",
    "in 0 <= x <= 2",
    (0.0, true),
    2.0,
);
/// `model.max_output_tokens`.
pub const MAX_OUTPUT_TOKENS: Bounds = Bounds::whole("max_output_tokens", 1, ">= 1");

/// The deserializers of the numbers above: each checks its value where the parser reads it,
/// so the error carries the value's own file:line:column (and, in YAML, its path).
pub(crate) mod checked {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserializer;
    use serde::de::{self, Visitor};

    use super::*;

    /// What a checked value becomes: `f64` or `u64`.
    trait FromChecked: Sized {
        fn from_checked(x: f64, whole: Option<u64>) -> Self;
    }

    impl FromChecked for f64 {
        fn from_checked(x: f64, _: Option<u64>) -> Self {
            x
        }
    }

    impl FromChecked for u64 {
        fn from_checked(x: f64, whole: Option<u64>) -> Self {
            // A whole value is checked to be a whole number >= 0 and below 2^64 first.
            whole.unwrap_or(x as u64)
        }
    }

    std::thread_local! {
        /// Set while a config recorded in a run is read back ([`AgentConfig::from_recorded`]):
        /// a run recorded before a range existed must still replay, so its numbers are taken
        /// as they are (every use of them is safe for any value: durations are clamped).
        static RECORDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Reads a recorded config with the range checks off (see [`RECORDED`]).
    pub(crate) fn unchecked<T>(read: impl FnOnce() -> T) -> T {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                RECORDED.with(|r| r.set(false));
            }
        }
        RECORDED.with(|r| r.set(true));
        let _reset = Reset;
        read()
    }

    fn checking() -> bool {
        !RECORDED.with(std::cell::Cell::get)
    }

    /// Reads one number and checks it against `bounds`.
    struct Checked<T>(&'static Bounds, PhantomData<T>);

    impl<T: FromChecked> Checked<T> {
        fn check<E: de::Error>(&self, x: f64, shown: &dyn fmt::Display) -> Result<T, E> {
            if self.0.contains(x) || !checking() {
                Ok(T::from_checked(x, None))
            } else {
                Err(E::custom(self.0.refusal(&shown.to_string())))
            }
        }
    }

    impl<'de, T: FromChecked> Visitor<'de> for Checked<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{} {}", self.0.what, self.0.range)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            // A u64 keeps every digit; its f64 is only for the range check.
            let x = v as f64;
            if self.0.contains(x) || !checking() {
                Ok(T::from_checked(x, Some(v)))
            } else {
                Err(E::custom(self.0.refusal(&v.to_string())))
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => self.check(v as f64, &v),
            }
        }

        fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(self.0.refusal(&v.to_string()))),
            }
        }

        fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
            match i64::try_from(v) {
                Ok(v) => self.visit_i64(v),
                Err(_) => Err(E::custom(self.0.refusal(&v.to_string()))),
            }
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            // 3.0 for a whole field is 3; 2^64 and above do not fit.
            if self.0.whole && v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v)
            {
                return self.visit_u64(v as u64);
            }
            self.check(v, &Shown(v))
        }
    }

    /// An optional number: `null` (or nothing) is `None`.
    struct Optional<T>(&'static Bounds, PhantomData<T>);

    impl<'de, T: FromChecked> Visitor<'de> for Optional<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "null or {} {}", self.0.what, self.0.range)
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_any(Checked(self.0, PhantomData)).map(Some)
        }
    }

    fn one<'de, D: Deserializer<'de>, T: FromChecked>(
        d: D,
        bounds: &'static Bounds,
    ) -> Result<T, D::Error> {
        d.deserialize_any(Checked(bounds, PhantomData))
    }

    fn optional<'de, D: Deserializer<'de>, T: FromChecked>(
        d: D,
        bounds: &'static Bounds,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_option(Optional(bounds, PhantomData))
    }

    /// A float as YAML would write it: `1e300`, `-5`, `0.5`, `.nan`, `.inf`.
    struct Shown(f64);

    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            let x = self.0;
            if x.is_nan() {
                f.write_str(".nan")
            } else if x.is_infinite() {
                f.write_str(if x > 0.0 { ".inf" } else { "-.inf" })
            } else if x.fract() == 0.0 && x.abs() < 1e16 {
                write!(f, "{x:.0}")
            } else {
                write!(f, "{x:?}")
            }
        }
    }

    pub(crate) fn max_steps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        optional(d, &MAX_STEPS)
    }
    pub(crate) fn max_tool_calls<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        optional(d, &MAX_TOOL_CALLS)
    }
    pub(crate) fn max_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        optional(d, &MAX_TOKENS)
    }
    pub(crate) fn max_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d, &MAX_SECONDS)
    }
    pub(crate) fn max_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d, &MAX_USD)
    }
    pub(crate) fn timeout_s<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &TIMEOUT_S)
    }
    pub(crate) fn cost_usd<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &COST_USD)
    }
    pub(crate) fn latency_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        one(d, &LATENCY_MS)
    }
    pub(crate) fn read_window_s<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &READ_WINDOW_S)
    }
    pub(crate) fn input_per_mtok<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &INPUT_PER_MTOK)
    }
    pub(crate) fn output_per_mtok<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &OUTPUT_PER_MTOK)
    }
    /// Prices by model, each number checked where it is read.
    pub(crate) fn pricing<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::collections::BTreeMap<String, tapedeck_wire::Price>, D::Error> {
        /// A price as read (the same fields as `tapedeck_wire::Price`), its numbers checked.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Checked {
            #[serde(deserialize_with = "input_per_mtok")]
            input_per_mtok: f64,
            #[serde(deserialize_with = "output_per_mtok")]
            output_per_mtok: f64,
        }
        let prices: std::collections::BTreeMap<String, Checked> =
            serde::Deserialize::deserialize(d)?;
        Ok(prices
            .into_iter()
            .map(|(model, p)| {
                let price = tapedeck_wire::Price {
                    input_per_mtok: p.input_per_mtok,
                    output_per_mtok: p.output_per_mtok,
                };
                (model, price)
            })
            .collect())
    }
    pub(crate) fn temperature<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d, &TEMPERATURE)
    }
    pub(crate) fn max_output_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        one(d, &MAX_OUTPUT_TOKENS)
    }
}
