"""selectors.DefaultSelector in the tutorial's callback style.

``sel.register(sock, EVENT_READ, callback)``, then ``for key, mask in
sel.select(): key.data(key.fileobj, mask)``. ``DefaultSelector`` is
``EpollSelector`` on Linux, so phase 1 (waiting for data) is ``epoll_wait``
and phase 2 (copying) is ``recv``/``send`` on non-blocking sockets, as in
``epoll_loop``.

Cost per connection: what epoll costs, plus a ``SelectorKey`` namedtuple and a
dict entry in the selector's map, and a Python-level translation of every
event into ``(key, mask)`` pairs: the abstraction is paid per event.

Where it breaks: where epoll does (the open-file limit, EMFILE), somewhat
earlier in CPU per message.

With ``--processes N``: as epoll, a selector and a listener per process.
"""

from __future__ import annotations

import selectors

from servers.eventloop import IN, OUT, EventLoopServer


def _sel_mask(mask: int) -> int:
    return (selectors.EVENT_READ if mask & IN else 0) | (selectors.EVENT_WRITE if mask & OUT else 0)


class Server(EventLoopServer):
    model = "selectors"

    def prepare(self) -> None:
        self.sel = selectors.DefaultSelector()

    def watch(self, fd, mask):
        callback = self.accept_cb if fd == self.listener.fileno() else self.conn_cb
        self.sel.register(fd, _sel_mask(mask), callback)

    def rewatch(self, fd, mask):
        self.sel.modify(fd, _sel_mask(mask), self.conn_cb)

    def unwatch(self, fd):
        self.sel.unregister(fd)

    def wait(self, timeout):
        return self.sel.select(timeout)

    def dispatch(self, events) -> None:
        for key, mask in events:
            callback = key.data
            callback(key.fileobj, mask)

    # -- callbacks ----------------------------------------------------------
    def accept_cb(self, fileobj, mask) -> None:
        self.on_accept()

    def conn_cb(self, fd, mask) -> None:
        c = self.conns.get(fd)
        if c is None:
            return
        if mask & selectors.EVENT_READ:
            self.on_read(c)
        if mask & selectors.EVENT_WRITE and c.sock is not None:
            self.on_write(c)
