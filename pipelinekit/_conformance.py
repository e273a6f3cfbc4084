def check_provider(*a, **k):
    raise NotImplementedError
