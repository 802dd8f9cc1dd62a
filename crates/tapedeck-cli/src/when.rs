//! Parsing the time arguments of `--since`, `--before` and `--older-than`.

use tapedeck_trace::Timestamp;

/// The moment `micros` microseconds ago.
pub fn ago(micros: i64) -> Timestamp {
    Timestamp::from_micros(Timestamp::now().as_micros().saturating_sub(micros))
}

/// A moment given on the command line: a date (`2026-11-01`), an RFC 3339 time, or an age
/// (`30d`, `12h`, `90m`, `45s`, `2w`) counted back from now.
pub fn parse_moment(text: &str) -> Result<Timestamp, String> {
    if let Some(micros) = parse_age_micros(text) {
        return Ok(ago(micros));
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(Timestamp::from_micros(ts.as_microsecond()));
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && let Ok(zoned) = date.to_zoned_datetime(jiff::tz::TimeZone::UTC)
    {
        return Ok(Timestamp::from_micros(zoned.timestamp().as_microsecond()));
    }
    Err(format!(
        "`{text}` is not a time: use an age such as 30d, 12h, 45m, 2w, or a date such as 2026-11-01"
    ))
}

/// An age such as `30d`, in microseconds.
pub fn parse_age_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(seconds)?.checked_mul(1_000_000)
}

/// clap value parser for an age.
pub fn age_arg(text: &str) -> Result<i64, String> {
    parse_age_micros(text)
        .ok_or_else(|| format!("`{text}` is not an age: use e.g. 30d, 12h, 45m, 2w"))
}
