# A profile using every literal form the reader accepts.
c = get_config()  # noqa

c.TaskScheduler.scheme_name = 'lru'  # a comment after the value
c.TaskScheduler.hwm = 0
c.IPController.ip = "0.0.0.0"
c.IPController.use_threads = False
c.IPController.enable_curve = True
c.IPController.engine_ip = None
c.HeartMonitor.period = 2_500
c.DictDB.cull_fraction = 0.25
c.DictDB.size_limit = 4 * 1024**3
c.DictDB.record_limit = 100_000
c.Neg.int = -17
c.Neg.float = -1.5e-3
c.Num.hex = 0xFF
c.Num.oct = 0o17
c.Num.bin = 0b1010
c.Num.div = 7 / 2
c.Num.floordiv = -7 // 2
c.Num.mod = -7 % 3
c.Num.prec = 2 + 3 * 4 - -1
c.Num.paren = (2 + 3) * 4
c.Num.pow = 2 ** -1
c.Num.powneg = -2 ** 2
c.Num.mixed = 1 + 0.5
c.Str.concat = 'abc' "def"
c.Str.plus = 'a' + 'b'
c.Str.escapes = 'tab\there\n\x41\u00e9\\\'"'
c.Str.raw = r'C:\path\n'
c.Str.bytes = b'secret-key'
c.Str.unicode = u'ünï'
c.Str.triple = """line one
line two"""
c.Str.triple1 = '''it's'''
c.Str.empty = ''
c.Str.continued = 'one' \
    'two'
c.SQLiteDB.location = '/var/lib/ipp'
c.MongoDB.connection_kwargs = {
    'host': 'mongodb://db.example:27017',   # comments inside brackets
    'tz_aware': True,
    'nested': {'a': [1, 2, 3], 'b': (4,)},
}
c.MongoDB.connection_args = [
    'one',
    'two',
]
c.List.tuple = (1, 'two', 3.0)
c.List.empty_tuple = ()
c.List.bare_tuple = 1, 2
c.List.set = {'a', 'b', 'a'}
c.List.empty = []
c.List.plus = [1] + [2]
c.List.extended = ['a']
c.List.extended += ['b', 'c']
c.List.extended += ('d',)
c.Str.extended = 'x'
c.Str.extended += 'y'
c.Num.extended = 1
c.Num.extended += 2
c.Last.wins = 1
c.Last.wins = 2
c.Semi.a = 1; c.Semi.b = 2
c.Dict.empty = {}
