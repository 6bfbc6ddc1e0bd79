#!/usr/bin/python3
"""A MongoDB *stand-in* server for cparallel's tests: not MongoDB.

Debian ships no MongoDB server, so the tests of the MongoDB task-database plugin run against
this small wire-compatible stand-in built only from Debian packages:

- python3-mockupdb speaks the wire protocol (OP_MSG and OP_QUERY framing, one thread per
  connection);
- python3-mongomock evaluates queries, updates, sorts and indexes, in memory.

It answers the handshake (hello/isMaster as a MongoDB 4.4 standalone, wire version 9), ping,
buildInfo, insert (enforcing unique indexes with E11000), find with sort/skip/limit/projection and
real cursors (getMore, killCursors), update, delete, findAndModify, count, aggregate, createIndexes,
listIndexes, listCollections, listDatabases, drop and dropDatabase. mongomock 4.1 lacks $mod,
which is patched in with MongoDB's semantics (the remainder takes the sign of the dividend).

It does NOT do: authentication, TLS, transactions, change streams, replica sets, distinct,
document size limits (16 MiB), persistence, or speed (every query is a scan). Where
mongomock 4.1's query semantics differ from a real server, trust the real one (run the suites
against it with CPAR_TEST_MONGODB_URI, docs/mongodb.md). Known differences:
  - it compares with Python's ==: {"n": true} matches n = 1, sub-documents match regardless of
    their key order;
  - {"tags": {"$all": [["a", "b"]]}} and {"tags": {"$in": [["b"]]}} do not match tags equal to
    that list, and {"x": {"$all": [null]}} does not match a missing x;
  - {"a.b.c": {"$ne": null}} matches a document where a.b is a string;
  - $regex is Python's re, not PCRE ([[:alpha:]] is not a class);
  - findAndModify answers value null, not {}, when the projection leaves nothing of the document.

Usage:
    mongo_standin.py [--port N]
        Serve on 127.0.0.1:N (N = 0, the default, picks a free port) until SIGTERM or SIGINT.
        The first line on stdout is "mongodb_standin listening on mongodb://127.0.0.1:<port>/".
    mongo_standin.py [--port N] [--env NAME=VALUE ...] -- COMMAND [ARG ...]
        Start the server, run COMMAND with @MONGODB_URI@ in its arguments and in the --env values
        replaced by the server's URI (also exported as CPAR_TEST_MONGODB_URI), stop the server
        and exit with COMMAND's status.
    mongo_standin.py --use URI [--env NAME=VALUE ...] -- COMMAND [ARG ...]
        No stand-in: run COMMAND the same way against the real server at URI, then drop the
        databases it created there whose names are cparallel session ids (the contract suite
        makes one per test).
"""
import argparse
import datetime
import math
import os
import re
import signal
import subprocess
import sys
import threading

import bson
import mockupdb
import mongomock
import pymongo
from bson.int64 import Int64
from mongomock import filtering as _filtering

# ---- mongomock patches -------------------------------------------------------------------------


def _mod(doc_val, search_val):
    """MongoDB's $mod: [divisor, remainder] on numbers; C-style remainder (truncated)."""
    if isinstance(doc_val, bool) or not isinstance(doc_val, (int, float)):
        return False
    if isinstance(doc_val, float) and not math.isfinite(doc_val):
        return False
    divisor, remainder = search_val
    divisor = int(divisor)
    value = int(doc_val)  # MongoDB truncates doubles toward zero
    r = abs(value) % abs(divisor)
    if value < 0:
        r = -r
    return r == remainder


# The filterer instance is shared by every collection.
_filtering._filterer_inst._operator_map['$mod'] = _filtering._not_nothing_and(
    _filtering._list_expand(_mod))

# ---- the server ------------------------------------------------------------------------------

MAX_BSON = 16 * 1024 * 1024
BATCH_BYTES = 8 * 1024 * 1024  # a reply batch stops growing past this (at least one document)

HELLO = {
    'ismaster': True, 'isWritablePrimary': True, 'maxWireVersion': 9, 'minWireVersion': 0,
    'maxBsonObjectSize': MAX_BSON, 'maxMessageSizeBytes': 48000000,
    'maxWriteBatchSize': 100000, 'logicalSessionTimeoutMinutes': 30, 'readOnly': False,
}


class Standin:
    """The command handlers, over one in-memory mongomock client."""

    def __init__(self):
        self.store = mongomock.MongoClient()
        self.cursors = {}
        self.next_cursor = 1
        self.lock = threading.Lock()  # mongomock is not thread-safe

    def coll(self, req):
        return self.store[req.namespace][req.doc[req.command_name]]

    def batch(self, ns, cursor, first, limit=0, single=False, size=None):
        """One batch of documents from an iterator; registers the rest as a server cursor."""
        docs, nbytes = [], 0
        for doc in cursor:
            docs.append(doc)
            nbytes += len(bson.BSON.encode(doc))
            if (size and len(docs) >= size) or nbytes >= BATCH_BYTES:
                break
        cursor_id = 0
        if docs and not single:
            rest = iter(cursor)
            try:
                peek = next(rest)
            except StopIteration:
                peek = None
            if peek is not None:
                cursor_id = self.next_cursor
                self.next_cursor += 1
                self.cursors[cursor_id] = (ns, _chain(peek, rest))
        key = 'firstBatch' if first else 'nextBatch'
        return {'id': Int64(cursor_id), 'ns': ns, key: docs}

    def handle(self, req):
        name = req.command_name
        if name is None:
            return False
        with self.lock:
            try:
                return self.dispatch(req, name)
            except pymongo.errors.OperationFailure as e:
                req.command_err(code=e.code or 2, errmsg=str(e))
            except Exception as e:  # a command error rather than a dropped connection
                req.command_err(code=8, errmsg='%s: %s' % (type(e).__name__, e))
            return True

    def dispatch(self, req, name):
        doc = req.doc
        lname = name.lower()
        if lname in ('ismaster', 'hello'):
            req.ok(dict(HELLO, localTime=datetime.datetime.utcnow(), connectionId=1))
        elif lname in ('ping', 'endsessions', 'getlasterror'):
            req.ok()
        elif lname == 'buildinfo':
            req.ok(version='4.4.0', versionArray=[4, 4, 0, 0], maxBsonObjectSize=MAX_BSON)
        elif name == 'insert':
            c, n = self.coll(req), 0
            for d in doc.get('documents', []):
                try:
                    c.insert_one(d)
                except pymongo.errors.DuplicateKeyError as e:
                    req.ok(n=n, writeErrors=[{'index': n, 'code': 11000, 'errmsg': str(e)}])
                    return True
                n += 1
            req.ok(n=n)
        elif name == 'find':
            c = self.coll(req)
            cur = c.find(doc.get('filter') or {}, doc.get('projection'))
            if doc.get('sort'):
                cur = cur.sort(list(doc['sort'].items()))
            if doc.get('skip'):
                cur = cur.skip(doc['skip'])
            limit = doc.get('limit') or 0
            if limit:
                cur = cur.limit(abs(limit))
            ns = '%s.%s' % (req.namespace, doc['find'])
            single = bool(doc.get('singleBatch')) or limit < 0
            req.ok(cursor=self.batch(ns, iter(list(cur)), True, single=single,
                                     size=doc.get('batchSize')))
        elif name == 'getMore':
            cid = int(doc['getMore'])
            entry = self.cursors.pop(cid, None)
            if entry is None:
                req.command_err(code=43, errmsg='cursor id %d not found' % cid)
                return True
            ns, it = entry
            reply = self.batch(ns, it, False, size=doc.get('batchSize'))
            if reply['id']:
                # keep the id the client knows
                self.cursors[cid] = self.cursors.pop(int(reply['id']))
                reply['id'] = Int64(cid)
            req.ok(cursor=reply)
        elif name == 'killCursors':
            for cid in doc.get('cursors', []):
                self.cursors.pop(int(cid), None)
            req.ok(cursorsKilled=list(doc.get('cursors', [])))
        elif name == 'update':
            c, n, nmod, upserted = self.coll(req), 0, 0, []
            for i, u in enumerate(doc.get('updates', [])):
                f = c.update_many if u.get('multi') else c.update_one
                r = f(u['q'], u['u'], upsert=bool(u.get('upsert')))
                n += r.matched_count
                nmod += r.modified_count
                if r.upserted_id is not None:
                    n += 1
                    upserted.append({'index': i, '_id': r.upserted_id})
            extra = {'upserted': upserted} if upserted else {}
            req.ok(n=n, nModified=nmod, **extra)
        elif name == 'delete':
            c, n = self.coll(req), 0
            for d in doc.get('deletes', []):
                r = (c.delete_one if d.get('limit') == 1 else c.delete_many)(d['q'])
                n += r.deleted_count
            req.ok(n=n)
        elif name == 'findAndModify':
            c = self.coll(req)
            query, fields = doc.get('query') or {}, doc.get('fields')
            sort = list(doc['sort'].items()) if doc.get('sort') else None
            before = c.find_one(query, sort=sort)
            if doc.get('remove'):
                value = c.find_one_and_delete(query, projection=fields, sort=sort)
            else:
                value = c.find_one_and_update(
                    query, doc['update'], projection=fields, sort=sort,
                    upsert=bool(doc.get('upsert')),
                    return_document=pymongo.ReturnDocument.AFTER if doc.get('new')
                    else pymongo.ReturnDocument.BEFORE)
            found = before is not None
            req.ok(value=value, lastErrorObject={'n': 1 if found or value is not None else 0,
                                                 'updatedExisting': found})
        elif name == 'count':
            req.ok(n=self.coll(req).count_documents(doc.get('query') or {}))
        elif name == 'aggregate':
            c = self.coll(req)
            ns = '%s.%s' % (req.namespace, doc['aggregate'])
            req.ok(cursor=self.batch(ns, iter(list(c.aggregate(doc.get('pipeline', [])))), True))
        elif name == 'createIndexes':
            c = self.coll(req)
            before = len(c.index_information())
            for ix in doc.get('indexes', []):
                opts = {k: v for k, v in ix.items() if k in ('name', 'unique', 'sparse')}
                c.create_index(list(ix['key'].items()), **opts)
            req.ok(numIndexesBefore=before, numIndexesAfter=len(c.index_information()))
        elif name == 'listIndexes':
            c = self.coll(req)
            ixs = [dict(v, name=k, key=dict(v['key']), v=2)
                   for k, v in c.index_information().items()]
            ns = '%s.%s' % (req.namespace, doc['listIndexes'])
            req.ok(cursor=self.batch(ns, iter(ixs), True))
        elif name == 'drop':
            self.store[req.namespace].drop_collection(doc['drop'])
            req.ok()
        elif name == 'dropDatabase':
            self.store.drop_database(req.namespace)
            req.ok()
        elif name == 'listCollections':
            names = self.store[req.namespace].list_collection_names()
            ns = req.namespace + '.$cmd.listCollections'
            req.ok(cursor=self.batch(ns, iter([{'name': n, 'type': 'collection'}
                                               for n in names]), True))
        elif name == 'listDatabases':
            req.ok(databases=[{'name': n, 'sizeOnDisk': 0, 'empty': False}
                              for n in self.store.list_database_names()], totalSize=0)
        else:
            req.command_err(code=59, errmsg='no such command: %r (mongodb_standin)' % name)
        return True


def _chain(first, rest):
    yield first
    yield from rest


def start(port=0):
    """Start a stand-in on 127.0.0.1:port (0: a free one); returns (server, uri)."""
    standin = Standin()
    server = mockupdb.MockupDB(port=port or None, request_timeout=10)
    server.autoresponds(standin.handle)
    bound = server.run()
    return server, 'mongodb://127.0.0.1:%d/' % bound


SESSION_DB = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{24}$')


def _databases(uri):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return client, set(client.list_database_names())
    except pymongo.errors.PyMongoError as e:
        print('mongo_standin: cannot list the databases at %s: %s' % (uri, e), file=sys.stderr)
        client.close()
        return None, set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--use', metavar='URI', help='a real server to run COMMAND against')
    parser.add_argument('--env', action='append', default=[], metavar='NAME=VALUE')
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ['--'] else args.command

    if args.use:
        server, uri = None, args.use
        client, before = _databases(uri)
        if client is None:
            return 1
    else:
        server, uri = start(args.port)
        print('mongodb_standin listening on %s' % uri, flush=True)
    if not command:
        if server is None:
            parser.error('--use needs a COMMAND')
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        while not stop.wait(3600):
            pass
        server.stop()
        return 0

    env = dict(os.environ, CPAR_TEST_MONGODB_URI=uri)
    for item in args.env:
        name, _, value = item.partition('=')
        env[name] = value.replace('@MONGODB_URI@', uri)
    try:
        rc = subprocess.call([a.replace('@MONGODB_URI@', uri) for a in command], env=env)
    finally:
        if server is not None:
            server.stop()
        else:
            after = set(client.list_database_names())
            for name in sorted(after - before):
                if SESSION_DB.match(name):
                    client.drop_database(name)
            client.close()
    return rc if rc >= 0 else 128 - rc


if __name__ == '__main__':
    sys.exit(main())
