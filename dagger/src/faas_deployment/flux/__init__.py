"""flux"""
