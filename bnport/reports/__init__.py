"""A verify report rendered: text table, JSON, JUnit XML, HTML with its chart. Imports bnport.core and bnport.io."""
