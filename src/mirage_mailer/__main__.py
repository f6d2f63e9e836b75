from mirage_mailer.cli import main

main()
