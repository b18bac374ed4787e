def test_env():
    import ticdata
