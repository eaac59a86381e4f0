"""What every verb works with: the configuration, the plugins, the clock and the keys,
and how plugins are built from configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping

import attrs

from backupkit.config import Config, PluginRef, SetConfig
from backupkit.core.manifest import PluginSpec
from backupkit.crypto.keys import Keyring
from backupkit.errors import ConfigError, PluginError
from backupkit.params import scrub_url
from backupkit.plugin import KeyedTransform, Sink, Source, Transform, check_chain
from backupkit.plugins import Plugins

Clock = Callable[[], dt.datetime]


@attrs.frozen
class Parts:
    """An engine's configuration, plugins, clock and keyring, handed to each verb."""

    config: Config
    plugins: Plugins
    clock: Clock
    keyring: Keyring

    def sink_for(self, ref: PluginRef | str) -> Sink:
        """The sink a configuration names: a plugin reference, or a location (a path, a
        URL) that the ``backupkit_sink_for_url`` hook assigns to a sink plugin."""
        if isinstance(ref, str):
            found = self.plugins.hook.backupkit_sink_for_url(url=ref)
            if found is None:
                raise ConfigError(
                    f"no sink plugin handles {scrub_url(ref)!r}; is the plugin installed?"
                )
            if not (isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], str)
                    and isinstance(found[1], Mapping)):
                raise PluginError(
                    f"a backupkit_sink_for_url hook answered {scrub_url(ref)!r} with "
                    f"{type(found).__name__} {scrub_url(repr(found))[:80]}; it must return "
                    "(sink id, params) or None: fix or block that plugin"
                )
            ref = PluginRef(id=found[0], params=found[1])
        return self.plugins.sink(ref.id).from_params(ref.params)

    def sources(self, set_cfg: SetConfig) -> list[tuple[str, Source]]:
        """The set's sources, built, with their artifact names."""
        return [
            (ref.name or ref.id, self.plugins.source(ref.id).from_params(ref.params))
            for ref in set_cfg.sources
        ]

    def transforms(self, refs: Iterable[PluginRef | PluginSpec], where: str) -> list[Transform]:
        """A transform chain, built, keyed and checked (order rule, keys present)."""
        chain = [self.plugins.transform(r.id).from_params(r.params) for r in refs]
        chain = [t.with_keyring(self.keyring) if isinstance(t, KeyedTransform) else t for t in chain]
        check_chain(chain, where=where)
        for t in chain:
            if isinstance(t, KeyedTransform):
                t.check_keys(where)  # a missing key is a one-line error naming its id, up front
        return chain

    def sinks_of(self, set_name: str | None, location: str | None = None) -> list[Sink]:
        """The sinks an operation touches: its own *location*, else its set's sink, else
        every configured sink."""
        if location:
            return [self.sink_for(location)]
        if set_name is not None and set_name in self.config.sets:
            return [self.sink_for(self.config.sets[set_name].sink)]
        return self.sinks()

    def sinks(self) -> list[Sink]:
        """Every configured sink, once each."""
        refs: list[PluginRef | str] = [s.sink for s in self.config.sets.values()]
        if self.config.sink is not None:
            refs.append(self.config.sink)
        sinks: dict[str, Sink] = {}
        for ref in refs:
            sink = self.sink_for(ref)
            sinks.setdefault(f"{sink.id}:{sink.location}", sink)
        if not sinks:
            raise ConfigError("no sink is configured; pass --sink or use a config file")
        return list(sinks.values())
