//! The plant: its shift calendar, production volume, weather, and how each
//! demo machine's power responds to them.

use std::f64::consts::TAU;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use uuid::Uuid;

use super::noise;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineKind {
    Compressor,
    Hvac,
    Furnace,
    Conveyor,
}

/// A machine of the simulated plant, with the ids the seeds' scripts use.
#[derive(Debug, Clone, Copy)]
pub struct DemoMachine {
    pub index: u8,
    pub id: Uuid,
    pub name: &'static str,
    pub machine_type: &'static str,
    pub location: &'static str,
    pub rated_power_kw: f64,
    pub kind: MachineKind,
    /// kW at idle, and kW per unit/h of production (or per degree for HVAC).
    base_kw: f64,
    per_unit_kw: f64,
}

/// `power` is (rated kW, idle kW, kW per unit/h or per degree).
const fn demo(
    index: u8,
    name: &'static str,
    machine_type: &'static str,
    location: &'static str,
    kind: MachineKind,
    power: (f64, f64, f64),
) -> DemoMachine {
    DemoMachine {
        index,
        id: Uuid::from_u128(0xc000_0000_0000_0000_0000_0000_0000_0000 | index as u128),
        name,
        machine_type,
        location,
        rated_power_kw: power.0,
        kind,
        base_kw: power.1,
        per_unit_kw: power.2,
    }
}

/// Compressor-1 is `c0000000-0000-0000-0000-000000000001`, and so on.
pub const DEMO_MACHINES: [DemoMachine; 5] = [
    demo(1, "Compressor-1", "compressor", "Hall A", MachineKind::Compressor, (75.0, 12.0, 0.45)),
    demo(2, "Compressor-2", "compressor", "Hall A", MachineKind::Compressor, (55.0, 8.0, 0.30)),
    demo(3, "HVAC-1", "hvac", "Office block", MachineKind::Hvac, (120.0, 10.0, 4.0)),
    demo(4, "Furnace-1", "furnace", "Hall B", MachineKind::Furnace, (400.0, 90.0, 2.2)),
    demo(5, "Conveyor-1", "conveyor", "Hall B", MachineKind::Conveyor, (15.0, 2.0, 0.09)),
];

/// What drives consumption during one interval.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// 0 when no shift runs, up to 1 for a full day shift.
    pub shift_factor: f64,
    pub production_per_hour: f64,
    pub outdoor_temp_c: f64,
}

/// Nominal plant output during a full shift, units per hour.
const NOMINAL_UNITS_PER_HOUR: f64 = 120.0;

pub fn conditions(seed: u64, mid: DateTime<Utc>, end: DateTime<Utc>, interval: Duration) -> Conditions {
    let shift_factor = shift_factor(mid);
    // Production varies per interval; the bucket key makes it shared by every
    // machine of the plant for the same interval.
    let bucket = (end.timestamp_millis() / interval.num_milliseconds().max(1)) as u64;
    let wobble = 1.0 + 0.08 * noise::normal(seed, 100, bucket);
    let production_per_hour = (shift_factor * NOMINAL_UNITS_PER_HOUR * wobble).max(0.0);
    Conditions { shift_factor, production_per_hour, outdoor_temp_c: outdoor_temp(seed, mid) }
}

/// Three shifts on weekdays (06–14 full, 14–22 at 90 %, 22–06 at 65 %), one
/// reduced Saturday morning shift, nothing on Sundays.
pub fn shift_factor(t: DateTime<Utc>) -> f64 {
    let hour = t.hour();
    match t.weekday() {
        Weekday::Sat => {
            if (6..14).contains(&hour) {
                0.5
            } else {
                0.0
            }
        }
        Weekday::Sun => 0.0,
        day => match hour {
            0..6 if day == Weekday::Mon => 0.0,
            0..6 => 0.65,
            6..14 => 1.0,
            14..22 => 0.9,
            _ if day == Weekday::Fri => 0.0,
            _ => 0.65,
        },
    }
}

/// A seasonal cycle (coldest late January), a daily cycle (warmest at 15:00)
/// and slow weather fronts with seeded phases.
pub fn outdoor_temp(seed: u64, t: DateTime<Utc>) -> f64 {
    let day = t.timestamp() as f64 / 86_400.0;
    let doy = t.ordinal0() as f64 + t.num_seconds_from_midnight() as f64 / 86_400.0;
    let seasonal = 10.0 - 9.0 * (TAU * (doy - 20.0) / 365.25).cos();
    let hour = t.num_seconds_from_midnight() as f64 / 3600.0;
    let daily = 4.0 * (TAU * (hour - 15.0) / 24.0).cos();
    let fronts: f64 = [(3.1, 1.2), (5.7, 0.9), (9.3, 0.8)]
        .iter()
        .enumerate()
        .map(|(i, (period, amp))| amp * (TAU * (day / period + noise::uniform(seed, 200, i as u64))).sin())
        .sum();
    seasonal + daily + fronts
}

impl DemoMachine {
    /// Expected power under `c`, before noise and anomalies.
    pub fn normal_power(&self, c: &Conditions) -> f64 {
        let producing = c.production_per_hour > 0.0;
        match self.kind {
            MachineKind::Compressor if producing => self.base_kw + self.per_unit_kw * c.production_per_hour,
            // Leaks keep an idle compressor cycling.
            MachineKind::Compressor => self.base_kw * 0.5,
            MachineKind::Hvac => {
                let t = c.outdoor_temp_c;
                let (cool_at, heat_at, fans, scale) =
                    if c.shift_factor > 0.0 { (18.0, 14.0, self.base_kw, 1.0) } else { (22.0, 10.0, 3.0, 0.5) };
                fans + scale
                    * (self.per_unit_kw * (t - cool_at).max(0.0) + 0.75 * self.per_unit_kw * (heat_at - t).max(0.0))
            }
            MachineKind::Furnace if producing => self.base_kw + self.per_unit_kw * c.production_per_hour,
            // Kept warm over the weekend rather than cooled down.
            MachineKind::Furnace => self.base_kw * 0.45,
            MachineKind::Conveyor if producing => self.base_kw + self.per_unit_kw * c.production_per_hour,
            MachineKind::Conveyor => 0.3,
        }
    }

    /// Relative noise of the meter and process.
    pub fn noise_pct(&self) -> f64 {
        match self.kind {
            MachineKind::Compressor => 0.03,
            MachineKind::Hvac => 0.04,
            MachineKind::Furnace => 0.02,
            MachineKind::Conveyor => 0.05,
        }
    }
}
