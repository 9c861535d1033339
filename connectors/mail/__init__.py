"""What the IMAP and Maildir connectors share: MIME parsing, threading, thread → task.

A mailbox source only differs in how it lists and reads messages; everything
from raw bytes onwards lives here: `parse` turns bytes into a `MailMessage`,
`threads` groups messages into threads, and `mapping` turns one thread into one
task.
"""
