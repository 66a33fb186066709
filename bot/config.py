"""Settings: `GIGUNION_*` environment variables over an optional TOML file over defaults.

The union profile (name, member-number prefix, platforms, kinds of work, stations, benefits) comes
from the `[union]` table of that file, falling back to `default_union.toml`, modelled on the pilot.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigProblem

ENV_PREFIX = "GIGUNION_"
APP_NAME = "gigunion"
DEFAULT_DB_FILE = "gigunion.db"
KEY_FILE = "gigunion.key"
SQLITE_PREFIX = "sqlite+aiosqlite:///"
DEFAULT_MEDIA_MAX_BYTES = 10 * 1024 * 1024
_DEFAULT_PROFILE = Path(__file__).with_name("default_union.toml")


@dataclass(frozen=True)
class Localized:
    """A text that members read, given per language by the union's own configuration."""

    by_lang: dict[str, Any]
    fallback: str

    def __call__(self, lang: str) -> Any:
        return self.by_lang.get(lang, self.by_lang.get(self.fallback))


@dataclass(frozen=True)
class WorkKind:
    id: str
    label: Localized


@dataclass(frozen=True)
class Station:
    name: Localized
    address: Localized
    hours: Localized
    location: tuple[float, float] | None


@dataclass(frozen=True)
class UnionContact:
    """How a rider reaches a person at the union: the desk's phone and its hours, and optionally a
    WeChat account and an email address."""

    phone: str
    hours: Localized
    wechat: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class ClaimDocument:
    """One line of a claim type's checklist."""

    id: str
    label: Localized
    required: bool
    hint: Localized | None = None


@dataclass(frozen=True)
class ClaimType:
    """A kind of cover a member can claim on, with what a claim needs."""

    id: str
    label: Localized
    cover_limit_fen: int  # money is whole fen everywhere: the TOML's yuan are converted once, here
    window_days: int  # a claim is made within this many days of the incident
    documents: tuple[ClaimDocument, ...]
    require_id_number: bool  # a national ID number is asked for at payout only when the insurer needs it


@dataclass(frozen=True)
class ConsultKind:
    """A kind of consultation the union offers (法律咨询, 心理咨询…), how long a session lasts and how
    it can be held: in person at a rest station, by phone or by video."""

    id: str
    label: Localized
    duration_minutes: int
    modes: tuple[str, ...]  # subset of CONSULT_MODES
    topic_note: Localized | None = None  # said when the topic is asked for (who reads it, that it may be left out)


CONSULT_MODES = ("station", "phone", "video")


@dataclass(frozen=True)
class UnionProfile:
    name: Localized
    member_prefix: str
    timezone: str
    languages: tuple[str, ...]
    platforms: tuple[str, ...]
    work_kinds: tuple[WorkKind, ...]
    stations: tuple[Station, ...]
    benefits: Localized
    # None when the union gave no [union.contact]: riders asking for a person are sent to the stations.
    contact: UnionContact | None = None
    claim_types: tuple[ClaimType, ...] = ()
    consult_kinds: tuple[ConsultKind, ...] = ()

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def work_kind(self, kind_id: str) -> WorkKind | None:
        return next((k for k in self.work_kinds if k.id == kind_id), None)

    def claim_type(self, type_id: str) -> ClaimType | None:
        return next((c for c in self.claim_types if c.id == type_id), None)

    def consult_kind(self, kind_id: str) -> ConsultKind | None:
        return next((k for k in self.consult_kinds if k.id == kind_id), None)

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> UnionProfile:
        languages = tuple(table.get("languages", ["zh_CN", "en"]))
        fallback = languages[0]

        def loc(value: Any) -> Localized:
            return Localized(value if isinstance(value, dict) else {fallback: value}, fallback)

        return cls(
            name=loc(table["name"]),
            member_prefix=str(table.get("member_prefix", "GU")).upper(),
            timezone=table.get("timezone", "Asia/Shanghai"),
            languages=languages,
            platforms=tuple(table.get("platforms", ())),
            work_kinds=tuple(WorkKind(k["id"], loc(k["label"])) for k in table.get("work_kinds", ())),
            stations=tuple(
                Station(
                    loc(s["name"]),
                    loc(s.get("address", "")),
                    loc(s.get("hours", "")),
                    tuple(s["location"]) if "location" in s else None,
                )
                for s in table.get("stations", ())
            ),
            benefits=loc(table.get("benefits", {fallback: []})),
            contact=_contact(table.get("contact"), loc),
            claim_types=tuple(_claim_type(c, loc) for c in table.get("claim_types", ())),
            consult_kinds=tuple(_consult_kind(c, loc) for c in table.get("consult_kinds", ())),
        )


def _contact(table: dict[str, Any] | None, loc: Callable[[Any], Localized]) -> UnionContact | None:
    if not table or not str(table.get("phone", "")).strip():
        return None
    return UnionContact(
        phone=str(table["phone"]).strip(),
        hours=loc(table.get("hours", "")),
        wechat=str(table.get("wechat", "")).strip() or None,
        email=str(table.get("email", "")).strip() or None,
    )


def _claim_type(table: dict[str, Any], loc: Callable[[Any], Localized]) -> ClaimType:
    limit = _fen(table["cover_limit_yuan"])
    window = table["window_days"]
    if limit is None or isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        raise ValueError(f"claim type {table.get('id')!r}: cover_limit_yuan and window_days must be positive")
    return ClaimType(
        id=str(table["id"]),
        label=loc(table["label"]),
        cover_limit_fen=limit,
        window_days=window,
        documents=tuple(
            ClaimDocument(
                id=str(d["id"]),
                label=loc(d["label"]),
                required=bool(d.get("required", False)),
                hint=loc(d["hint"]) if d.get("hint") else None,
            )
            for d in table.get("documents", ())
        ),
        require_id_number=bool(table.get("require_id_number", False)),
    )


def _consult_kind(table: dict[str, Any], loc: Callable[[Any], Localized]) -> ConsultKind:
    duration = table["duration_minutes"]
    modes = tuple(str(m) for m in table.get("modes", ("station",)))
    if isinstance(duration, bool) or not isinstance(duration, int) or not 5 <= duration <= 480:
        raise ValueError(f"consult kind {table.get('id')!r}: duration_minutes must be from 5 to 480")
    if not modes or any(m not in CONSULT_MODES for m in modes):
        raise ValueError(f"consult kind {table.get('id')!r}: modes must be some of {', '.join(CONSULT_MODES)}")
    return ConsultKind(
        id=str(table["id"]),
        label=loc(table["label"]),
        duration_minutes=duration,
        modes=modes,
        topic_note=loc(table["topic_note"]) if table.get("topic_note") else None,
    )


def _fen(yuan: Any) -> int | None:
    """Yuan as written in TOML (10000, or "12345.67" as text so no float is involved) in fen."""
    from decimal import Decimal, InvalidOperation

    if isinstance(yuan, bool) or not isinstance(yuan, int | str):
        return None
    try:
        amount = Decimal(str(yuan).strip())
    except InvalidOperation:
        return None
    fen = amount * 100
    if not amount.is_finite() or fen != fen.to_integral_value() or fen <= 0:
        return None
    return int(fen)


def default_profile() -> UnionProfile:
    return UnionProfile.from_table(tomllib.loads(_DEFAULT_PROFILE.read_text("utf-8"))["union"])


@dataclass(frozen=True)
class Settings:
    # Default: `gigunion.db` in the data folder (see `data_folder`).
    database_url: str = ""
    secret_key: str | None = None
    session_timeout_minutes: int = 30
    log_level: str = "INFO"
    telegram_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_webhook_secret: str | None = None
    wechat_token: str | None = None
    wechat_aes_key: str | None = None
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_api_url: str = "https://api.weixin.qq.com/cgi-bin/"
    # Photos and documents people send: where they are kept (default: `media` in the data folder)
    # and the largest accepted.
    media_dir: str | None = None
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES
    # The one folder for everything the bot keeps (database, key, media); default: the platform's user
    # data folder, so a command finds the same bot whatever folder it is run from.
    home: str | None = None
    # Consultation booking: how long before a session it can still be booked, how far ahead, and
    # when reminders go out (minutes before the start).
    booking_min_notice_minutes: int = 120
    booking_horizon_days: int = 30
    booking_reminders_minutes: tuple[int, ...] = (1440, 60)
    profile: UnionProfile = field(default_factory=default_profile)
    # Sections of the TOML file this module does not interpret (e.g. [wechat.menu], [wechat.templates]).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"{SQLITE_PREFIX}{self.data_folder() / DEFAULT_DB_FILE}")

    def data_folder(self) -> Path:
        if self.home:
            return Path(self.home).expanduser()
        import platformdirs  # only when asked: most commands are told where their data is

        return platformdirs.user_data_path(APP_NAME, appauthor=False)

    def sqlite_path(self) -> Path | None:
        if self.database_url.startswith(SQLITE_PREFIX):
            return Path(self.database_url[len(SQLITE_PREFIX) :])
        return None

    def media_path(self) -> Path:
        if self.media_dir:
            return Path(self.media_dir)
        return self.data_folder() / "media"

    def key_file(self) -> Path:
        """Where the secret key is kept when `secret_key` is not set (see `bot.services.secret_key`)."""
        return self.data_folder() / KEY_FILE


_SCALARS = {
    "database_url": str,
    "secret_key": str,
    "session_timeout_minutes": int,
    "log_level": str,
    "telegram_token": str,
    "telegram_api_url": str,
    "telegram_webhook_secret": str,
    "wechat_token": str,
    "wechat_aes_key": str,
    "wechat_appid": str,
    "wechat_secret": str,
    "wechat_api_url": str,
    "media_dir": str,
    "media_max_bytes": int,
    "home": str,
    "booking_min_notice_minutes": int,
    "booking_horizon_days": int,
    "booking_reminders_minutes": tuple,
}


def load_settings(config: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    config = config or env.get(ENV_PREFIX + "CONFIG")
    values: dict[str, Any] = {}
    if config:
        data = _read_config(Path(config))
        union = data.pop("union", None)
        if union:
            values["profile"] = _profile(union, Path(config))
        flat = {k: v for k, v in data.items() if k in _SCALARS}
        # [telegram] token = … and [wechat] appid = … read as telegram_token, wechat_appid.
        for section in ("telegram", "wechat", "media", "booking"):
            for k, v in dict(data.get(section, {})).items():
                if f"{section}_{k}" in _SCALARS:
                    flat[f"{section}_{k}"] = v
        values.update({k: _checked(k, v, f"{k} in {config}") for k, v in flat.items()})
        values["extra"] = {k: v for k, v in data.items() if k not in _SCALARS}
    for name in _SCALARS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw:
            values[name] = _checked(name, raw, ENV_PREFIX + name.upper())
        elif raw is not None and name == "secret_key":
            # Set but empty is a key that failed to arrive (a blank secret in a unit file, say): refuse it
            # rather than quietly fall back to a key file.
            raise ConfigProblem(
                f"{ENV_PREFIX}SECRET_KEY is set but empty: give the key, or unset it to use the key file."
            )
    return Settings(**values)


# Numbers, with the range that makes sense for each and its unit.
_RANGES = {
    "session_timeout_minutes": (1, 1440, "minutes"),
    "media_max_bytes": (1, 2 * 1024**3, "bytes"),
    "booking_min_notice_minutes": (0, 7 * 1440, "minutes"),
    "booking_horizon_days": (1, 365, "days"),
    "booking_reminders_minutes": (1, 14 * 1440, "minutes"),
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def _checked(name: str, value: Any, where: str) -> Any:
    """`value` of setting `name` (given at `where`), converted, or ConfigProblem naming the setting, the
    value and what it may be. Text settings are not quoted back: they include keys and tokens."""
    if _SCALARS[name] is tuple:
        return _minutes_list(value, where, *_RANGES[name])
    if _SCALARS[name] is int:
        low, high, unit = _RANGES[name]
        number = _whole_number(value)
        if number is None or not low <= number <= high:
            raise ConfigProblem(f"{where} is {value!r}: it must be a whole number of {unit} from {low} to {high}.")
        return number
    if not isinstance(value, str):
        raise ConfigProblem(f"{where} must be text (in quotes in a TOML file).")
    if name == "database_url" and not value.startswith(DATABASE_SCHEMES):
        raise ConfigProblem(
            f"{where} is no database address gigunion can use: write sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER@HOST/DATABASE."
        )
    if name == "log_level":
        if value.strip().upper() not in LOG_LEVELS:
            raise ConfigProblem(f"{where} is {value!r}: it must be one of {', '.join(LOG_LEVELS)}.")
        return value.strip().upper()
    return value


def _minutes_list(value: Any, where: str, low: int, high: int, unit: str) -> tuple[int, ...]:
    """A list of whole numbers, from TOML ([1440, 60]) or the environment ("1440,60"); may be empty."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else None
    numbers = [_whole_number(v) for v in items if not (isinstance(v, str) and not v.strip())] if items else []
    if items is None or any(n is None or not low <= n <= high for n in numbers):
        raise ConfigProblem(
            f"{where} is {value!r}: it must be a list of whole numbers of {unit} from {low} to {high}, "
            'like [1440, 60] (or "1440,60" in the environment).'
        )
    return tuple(sorted({n for n in numbers if n is not None}, reverse=True))


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):  # TOML's true is no number of minutes, though Python counts it as 1
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigProblem(
            f"There is no config file {path}. Check the path given with --config (or GIGUNION_CONFIG)."
        ) from None
    except OSError as e:
        raise ConfigProblem(f"The config file {path} cannot be read ({e.strerror}). Check its permissions.") from None
    except UnicodeDecodeError:
        raise ConfigProblem(f"The config file {path} is not UTF-8 text. Save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigProblem(f"The config file {path} is not valid TOML: {e}. Fix it (see https://toml.io).") from None


def _profile(table: dict[str, Any], path: Path) -> UnionProfile:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        profile = UnionProfile.from_table(table)
        ZoneInfo(profile.timezone)
    except ZoneInfoNotFoundError:
        raise ConfigProblem(
            f"[union] timezone in {path} is no time zone this machine knows; use a name like Asia/Shanghai."
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigProblem(
            f"[union] in {path} is incomplete or malformed ({type(e).__name__}: {e}). "
            "Compare it with bot/default_union.toml."
        ) from None
    return profile
