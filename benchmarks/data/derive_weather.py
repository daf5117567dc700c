"""Derives the gate benchmark's extra weather files from pvlib 0.10.5's bundled data (see README).

    pip download pvlib==0.10.5 --no-deps -d /tmp/pvlib-old
    unzip -o /tmp/pvlib-old/pvlib-0.10.5-py3-none-any.whl 'pvlib/data/*' -d /tmp/pvlib-old
    python benchmarks/data/derive_weather.py /tmp/pvlib-old/pvlib/data

Each output holds 8760 rows, row r the hour [r, r+1) of local standard time from 1 January,
with global, direct normal and diffuse irradiance (W/m2), air temperature (C) and wind speed
(m/s), and a header of `# key: value` lines (source, latitude, longitude, altitude, utc_offset).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pvlib

HERE = Path(__file__).resolve().parent
COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed")


def write(path: Path, table: pd.DataFrame, header: dict[str, object]) -> None:
    lines = [f"# {key}: {value}" for key, value in header.items()]
    body = table.loc[:, list(COLUMNS)].round(1).to_csv(index=False, lineterminator="\n")
    # mtime 0: the same input gives the same bytes
    with gzip.GzipFile(path, "wb", mtime=0) as out:
        out.write(("\n".join(lines) + "\n" + body).encode())


def pvgis_turin(data_dir: Path) -> None:
    """PVGIS 5 TMY (SARAH) for 45° N 8° E: hourly rows stamped HH:00 UTC whose irradiance is
    the satellite value of about HH:10 (it lines up with clear-sky sun ~10 min after the stamp).
    To local standard time (UTC+1), then irradiance interpolated to each hour's middle."""
    data, _ = pvlib.iotools.read_pvgis_tmy(
        data_dir / "tmy_45.000_8.000_2005_2016.csv", map_variables=True
    )
    table = pd.DataFrame({k: np.roll(data[k].to_numpy(dtype=float), 1) for k in COLUMNS})
    for k in ("ghi", "dni", "dhi"):
        v = table[k].to_numpy()
        table[k] = np.clip(v + (np.roll(v, -1) - v) * (20.0 / 60.0), 0.0, None)
    write(
        HERE / "pvgis_tmy_45n_8e.csv.gz",
        table,
        {
            "source": "PVGIS 5 TMY 2005-2016, 45.000 N 8.000 E (pvlib 0.10.5 "
            "pvlib/data/tmy_45.000_8.000_2005_2016.csv)",
            "latitude": 45.0,
            "longitude": 8.0,
            "altitude": 250.0,
            "utc_offset": 1,
        },
    )


def iwec_amsterdam(data_dir: Path) -> None:
    """ASHRAE IWEC EPW for Amsterdam Schiphol (WMO 062400): EPW hour h is the hour ending at h
    o'clock local standard time, which pvlib's reader labels by its start."""
    data, meta = pvlib.iotools.read_epw(data_dir / "NLD_Amsterdam062400_IWEC.epw")
    write(
        HERE / "iwec_amsterdam_062400.csv.gz",
        data.reset_index(drop=True),
        {
            "source": "ASHRAE IWEC 062400 Amsterdam (pvlib 0.10.5 "
            "pvlib/data/NLD_Amsterdam062400_IWEC.epw)",
            "latitude": meta["latitude"],
            "longitude": meta["longitude"],
            "altitude": meta["altitude"],
            "utc_offset": int(meta["TZ"]),
        },
    )


if __name__ == "__main__":
    source = Path(sys.argv[1])
    pvgis_turin(source)
    iwec_amsterdam(source)
