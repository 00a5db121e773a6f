"""The game itself, in plain Python: an arena where players steer and collect orbs.

The server is the authority: players only say which way they want to go (and when they
want to dash); :meth:`Arena.step` moves everybody, and :meth:`Arena.snapshot` is what
every page draws. Nothing here knows about wirehub; ``app.py`` wires it up.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Arena", "Player"]

WIDTH, HEIGHT = 960, 600
PLAYER_RADIUS = 16
ORB_RADIUS = 7
ORBS = 14
SPEED = 230.0  # units per second
DASH_SPEED = 3.2  # times SPEED, while dashing
DASH_TIME = 0.22  # seconds
DASH_COOLDOWN = 1.5  # seconds between dashes
COLORS = ("#38bdf8", "#f472b6", "#34d399", "#fbbf24", "#a78bfa", "#fb923c", "#f87171", "#2dd4bf")


@dataclass
class Player:
    id: str
    name: str
    color: str
    x: float
    y: float
    score: int = 0
    steer: tuple[int, int] = (0, 0)
    """The direction the player asks for: -1, 0 or 1 on each axis."""
    facing: tuple[float, float] = (1.0, 0.0)
    dash_left: float = 0.0
    cooldown: float = 0.0


@dataclass
class Arena:
    rng: random.Random = field(default_factory=random.Random)
    players: dict[str, Player] = field(default_factory=dict)
    orbs: list[tuple[float, float]] = field(default_factory=list)
    tick: int = 0

    def __post_init__(self) -> None:
        self.orbs = [self._free_spot(ORB_RADIUS) for _ in range(ORBS)]

    def join(self, player_id: str, name: str) -> Player:
        x, y = self._free_spot(PLAYER_RADIUS)
        color = COLORS[len(self.players) % len(COLORS)]
        player = self.players[player_id] = Player(player_id, name, color, x, y)
        return player

    def leave(self, player_id: str) -> None:
        self.players.pop(player_id, None)

    def steer(self, player_id: str, x: int, y: int) -> None:
        player = self.players.get(player_id)
        if player is not None:
            player.steer = (_sign(x), _sign(y))

    def dash(self, player_id: str) -> float:
        """Start a dash if the player may; return the seconds until the next one may."""
        player = self.players.get(player_id)
        if player is None:
            return 0.0
        if player.cooldown <= 0:
            player.dash_left, player.cooldown = DASH_TIME, DASH_COOLDOWN
        return player.cooldown

    def step(self, seconds: float) -> None:
        """Advance the game by ``seconds``: move, then collect."""
        self.tick += 1
        for player in self.players.values():
            self._move(player, seconds)
        for player in self.players.values():
            self._collect(player)

    def snapshot(self) -> dict[str, Any]:
        players = [
            {
                "id": p.id,
                "name": p.name,
                "color": p.color,
                "x": round(p.x, 1),
                "y": round(p.y, 1),
                "score": p.score,
                "dashing": p.dash_left > 0,
            }
            for p in self.players.values()
        ]
        orbs = [[round(x, 1), round(y, 1)] for x, y in self.orbs]
        return {"tick": self.tick, "players": players, "orbs": orbs}

    def _move(self, player: Player, seconds: float) -> None:
        player.cooldown = max(0.0, player.cooldown - seconds)
        dx, dy = player.steer
        length = math.hypot(dx, dy)
        if length:
            player.facing = (dx / length, dy / length)
        if player.dash_left > 0:  # a dash goes where the player faces, steering or not
            player.dash_left -= seconds
            vx, vy = player.facing[0] * DASH_SPEED, player.facing[1] * DASH_SPEED
        elif length:
            vx, vy = player.facing
        else:
            return
        player.x = _clamp(player.x + vx * SPEED * seconds, PLAYER_RADIUS, WIDTH - PLAYER_RADIUS)
        player.y = _clamp(player.y + vy * SPEED * seconds, PLAYER_RADIUS, HEIGHT - PLAYER_RADIUS)

    def _collect(self, player: Player) -> None:
        reach = PLAYER_RADIUS + ORB_RADIUS
        for index, (x, y) in enumerate(self.orbs):
            if math.hypot(player.x - x, player.y - y) < reach:
                player.score += 1
                self.orbs[index] = self._free_spot(ORB_RADIUS)

    def _free_spot(self, radius: float) -> tuple[float, float]:
        margin = radius + 8
        return (self.rng.uniform(margin, WIDTH - margin), self.rng.uniform(margin, HEIGHT - margin))


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
