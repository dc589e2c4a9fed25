"""Parked users: a held connection with no greenlet of its own.

Locust's user is a greenlet (``User.start`` spawns ``user.run()`` into the
runner's ``user_greenlets`` group), and a greenlet suspended in a wait costs
its stack: in CPython 3.11 each greenlet gets its own 16 KiB frame data-stack
chunk (one 4 KiB page of it touched) plus the slice of the C stack saved
when it switched out, 6-8 KB of RSS in all, more than everything else a held
user owns together (docs/design.md, "What a held user costs"). Between two
paced echoes, or for an idle user's whole hold, the greenlet has nothing to
do: the hub's callbacks echo (:mod:`loadgen.holding`).

So a parking user's code runs in a greenlet only while it has something to
do (connect, report a failure, pause before reconnecting, finish an echo the
hub could not), and not while its connection is held on the hub:

* What stands for the user in Locust's ``user_greenlets`` is a *token*: a
  gevent ``Greenlet`` that is never started (~0.5 KB; no stack, no frame),
  whose ``args[0]`` is the user, as Locust's ``user_classes_count`` and
  ``stop_users`` expect. It is the user's ``greenlet`` for Locust for the
  user's whole life, so Locust's user count is the group's length at every
  moment, parked or not, and a stop that Locust has begun (``stop_group``
  holds ``user.greenlet``) cannot lose track of the user when it parks or
  wakes: the token never changes.
* The user's code runs in a *live* greenlet outside the group (a raw
  greenlet, parent the hub): the first one started after ``start()`` (on
  start, connect), later ones started by the hub's callback that needs one
  (:meth:`Parking._resume`: a failure, the io timeout, a partial send, a reply
  in parts...), switched into at once, as ``Waiter.switch`` switches into a
  waiting greenlet. A live greenlet that arms its connection on the hub again
  returns, and the user is parked.
* Locust stops a user by killing its greenlet: ``User.stop(force)``,
  ``killone``, ``stop_group.kill`` after ``--stop-timeout``; all of them kill
  the token. Killing a never-started gevent greenlet runs none of its code,
  but its links run (``Greenlet.kill``, "links will still be executed"):
  :meth:`Parking._token_killed`, linked before the group's own link, stops the
  user in the hub before Locust's count drops: a parked user's ``on_stop``
  runs there (closes the socket, its watchers and timer); a live one gets
  ``GreenletExit`` thrown in where it waits, as gevent's own kill does, and
  runs ``on_stop`` in its greenlet. So every stop path (a step down, a
  graceful stop, ``quit``, a worker's stop) closes the connection and keeps
  the counts.

A graceful stop (``--stop-timeout``) is what it was: Locust marks the user
STOPPING and waits; a held connection's task never ends, so the user is
killed when the timeout ends, parked or not.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from gevent import GreenletExit, getcurrent, spawn_raw
from gevent.hub import get_hub
from greenlet import greenlet as RawGreenlet
from locust.exception import StopTest, StopUser
from locust.user.users import LOCUST_STATE_RUNNING

logger = logging.getLogger(__name__)

FRESH = object()  # what a live greenlet starts from: connect (after on_start, the first time)


def _never_runs(user: Any) -> None:  # the token's function: Locust reads args[0]
    raise AssertionError("a user's token greenlet is never started")


class Parking:
    """Locust's ``User.start`` for users that can be parked. The user class
    provides ``live(woke, wake)``: its loop from ``woke`` (:data:`FRESH`: connect;
    else what a callback handed to ``wake``), which returns only once it has
    parked (and only if ``wake`` is not None); ``after_error()``; ``on_start``
    and ``on_stop``. ``parks``: whether it parks at all (else its live greenlet
    lives until it is stopped, as Locust's would)."""

    parks = False
    _live: RawGreenlet | None = None  # running this user's code now
    _parked = False  # its connection held on the hub, no greenlet
    _began = False  # on_start ran
    _stopped = False  # on_stop ran

    def start(self, group: Any) -> Any:
        """As ``User.start``, but the greenlet Locust counts is the user's token."""
        self._group = group
        token = self._greenlet = group.greenlet_class(_never_runs, self)
        token.rawlink(self._token_killed)  # before the group's link: stopped, then uncounted
        group.add(token)
        spawn_raw(self._life, FRESH)
        return token

    def _life(self, woke: object) -> None:
        """What every live greenlet runs (Locust's ``User.run``, resumable)."""
        if self._greenlet.ready() or self._stopped:  # stopped before this greenlet ran
            return
        self._live, self._parked = getcurrent(), False
        wake = self._resume if self.parks else None
        try:
            if not self._began:
                self._state = LOCUST_STATE_RUNNING
                self._start_user()
            while True:
                try:
                    self.live(woke, wake)
                    self._parked = True  # returned: armed on the hub; this greenlet ends
                    return
                except (GreenletExit, StopUser, StopTest):
                    raise
                except Exception as e:  # as Locust's TaskSet: reported, logged, the task again
                    self.environment.events.user_error.fire(user_instance=self, exception=e,
                                                            tb=e.__traceback__)
                    if not self.environment.catch_exceptions:
                        raise
                    logger.error("%s\n%s", e, traceback.format_exc())
                    self.after_error()
                    woke = FRESH
        except (GreenletExit, StopUser, StopTest):
            self._stop_once()
        except BaseException:
            self._end()  # as a Locust user's greenlet that died of it
            raise
        finally:
            self._live = None
        self._end()  # stopped by StopUser/StopTest, not by Locust: out of its count

    def _start_user(self) -> None:
        try:
            self.on_start()
        except Exception as e:  # as Locust's User.run: reported, and the user is gone
            logger.error("%s\n%s", e, traceback.format_exc())
            if not isinstance(e, (StopUser, StopTest)):
                self.environment.events.user_error.fire(user_instance=self, exception=e,
                                                        tb=e.__traceback__)
            raise
        self._began = True

    def _end(self) -> None:
        """The user's code ended by itself (StopUser, an error): out of Locust's
        count, as a user's greenlet that ended would be. The token's link then
        stops the user if it has not been (its socket closed)."""
        self._greenlet.kill(block=False)

    def _resume(self, woke: object) -> None:
        """The hub's callbacks' wake-up for a parked user: its watchers stopped,
        a live greenlet started at once with what woke it."""
        self.client.unarm()
        RawGreenlet(self._life, get_hub()).switch(woke)

    def _token_killed(self, token: Any) -> None:
        """In the hub, when Locust killed the user's token: stop the user now."""
        live = self._live
        if live is not None:
            live.throw(GreenletExit)  # runs on_stop in its greenlet, as gevent's kill
        elif self._began:
            self._stop_once()  # parked: no greenlet to stop; nothing may raise in a link

    def _stop_once(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.on_stop()
        except Exception:  # noqa: BLE001 - as Locust: logged, the stop goes on
            logging.error("Uncaught exception in on_stop: \n%s", traceback.format_exc())
