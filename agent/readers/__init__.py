"""Reader backends. Each yields `Tap`s: what the reader reported (a UID as text, in the reader's
own format: the server normalises it with the station's configured format) and any agent state
to commit together with the read (the sim file's position)."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tap:
    uid: str
    state: dict = field(default_factory=dict)
