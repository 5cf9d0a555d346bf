"""The patrol service's dependencies, built once in ``create_app`` / the service runner:
settings, the key vault (``None`` without a master key), escalation and its policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.patrols.errors import PatrolConfigError
from cloud.patrols.escalation import EscalationPolicy, PatrolEscalation, default_escalation
from cloud.patrols.keys import KeyVault
from cloud.patrols.settings import PatrolSettings

__all__ = ["PatrolRuntime"]


@dataclass(frozen=True)
class PatrolRuntime:
    settings: PatrolSettings
    vault: KeyVault | None
    escalation: PatrolEscalation
    policy: EscalationPolicy = field(default_factory=EscalationPolicy)

    @classmethod
    def from_settings(cls, settings: PatrolSettings,
                      escalation: PatrolEscalation | None = None) -> PatrolRuntime:
        """Reads the master key (raises :class:`PatrolConfigError` if it is unusable)."""
        return cls(settings, settings.vault(), escalation or default_escalation())

    def require_vault(self) -> KeyVault:
        if self.vault is None:
            raise PatrolConfigError(
                "no patrol master key is configured (patrols.master_key_file or "
                f"${self.settings.master_key_env}): NTAG 424 SUN tags cannot be used")
        return self.vault

    @property
    def skew_tolerance_ms(self) -> int:
        return int(self.settings.skew_tolerance * 1000)
