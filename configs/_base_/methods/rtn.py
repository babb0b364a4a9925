method = dict(type='rtn')
